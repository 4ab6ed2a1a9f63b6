"""Checks across tables on typed data: references to patients, date order, the study-day anchor,
and the clinical story the tables tell together.

These run after every table passed its own checks, on the typed tables, as Ibis queries.
Each date rule is one declarative row: the table holding the later date, the earlier date it
must not precede, and why (``DATE_ORDER_RULES``). Besides them (warnings: the data may be
legitimate, e.g. a death not yet entered):

* ``ae.fatal_without_death``: an adverse event of grade 5 or outcome ``fatal`` for a patient
  `events` records no death for (alive at last contact, or no follow-up event at all). A fatal
  AE whose onset (or any other date) is after the recorded death is already ``date.order``.
* ``relapse.without_remission``: a ``relapse`` event for a patient with no remission recorded
  before it in the raw data: no ``cr_reported`` event, no assessment before the relapse date with
  marrow blasts below 5 % (:data:`REMISSION_MARROW_BLASTS_PCT`, the marrow criterion every
  remission category shares: CR, CRh, CRi, MLFS), and no CR or CRi without relapse as the last
  prior line (a patient entering the study in remission; a later line ends an earlier remission).
  The CR the criteria engine derives is not consulted: validation does not run the derivation.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from amlcohort.io.readers import ROW
from amlcohort.io.validate import Finding, report_findings
from amlcohort.problems import Problem
from amlcohort.schema import TABLES
from amlcohort.schema.model import DIAGNOSIS_COLUMNS
from amlcohort.schema.study import StudyDefinition


@dataclass(frozen=True)
class DateOrder:
    """``table.column`` must not be earlier than the patient's ``anchor``."""

    table: str
    column: str
    anchor: str
    reason: str
    where: tuple[str, str] | None = None  # (column, value) the rows must have


def first_doses(exposures: ir.Table, index_drug: str | None = None) -> ir.Table:
    """Per patient: ``first_dose``, the first ``start_date`` of ``index_drug`` (of any drug when
    None): study day 1."""
    ex = exposures if index_drug is None else exposures.filter(exposures.drug == index_drug)
    return ex.group_by("patient_id").aggregate(first_dose=ex.start_date.min())


def anchors(tables: dict[str, ir.Table], index_drug: str | None = None) -> ir.Table:
    """Per patient: diagnosis, study day 1 (``first_dose``), first CR reported, death (Ibis)."""
    p = tables["patients"].select("patient_id", diagnosis="diagnosis_date")
    first = first_doses(tables["exposures"], index_drug)
    ev = tables["events"]
    cr = (
        ev.filter(ev.event_type == "cr_reported")
        .group_by("patient_id")
        .aggregate(first_cr=ev.event_date.min())
    )
    death = ev.filter(ev.event_type == "death").group_by("patient_id").aggregate(death=ev.event_date.min())
    out = p.left_join(first, "patient_id").select(p, "first_dose")
    out = out.left_join(cr, "patient_id").select(out, "first_cr")
    return out.left_join(death, "patient_id").select(out, "death")


def _stored(t: ir.Table) -> ir.Table:
    """``t`` computed once into a temporary table of its connection: the many checks that join
    it then name it, instead of each inlining (and Ibis compiling) the query behind it."""
    con = t._find_backend()
    return con.create_table(f"_amlcohort_anchors_{next(_STORED)}", t, temp=True)


_STORED = itertools.count(1)

DATE_ORDER_RULES: tuple[DateOrder, ...] = (
    DateOrder("events", "event_date", "diagnosis", "before the diagnosis date"),
    DateOrder("exposures", "start_date", "diagnosis", "study drug started before the diagnosis date"),
    DateOrder("prior_therapies", "start_date", "diagnosis", "prior therapy started before diagnosis"),
    DateOrder(
        "events",
        "event_date",
        "first_dose",
        "response before study day 1 (the first dose)",
        ("event_type", "cr_reported"),
    ),
    DateOrder(
        "events", "event_date", "first_cr", "relapse before the first reported CR", ("event_type", "relapse")
    ),
    DateOrder("assessments", "assessment_date", "diagnosis", "assessment before the diagnosis date"),
)

#: Marrow blasts below this (% of nucleated cells) is the morphological remission every response
#: category with a relapse after it requires (ELN 2017 and 2022: CR, CRh, CRi, MLFS: < 5 %).
REMISSION_MARROW_BLASTS_PCT = 5.0

# Within one row: (table, later column, earlier column).
ROW_ORDER_RULES: tuple[tuple[str, str, str], ...] = (
    ("exposures", "end_date", "start_date"),
    ("supportive_care", "end_date", "start_date"),
    ("prior_therapies", "end_date", "start_date"),
    ("prior_therapies", "cr_date", "start_date"),
    ("prior_therapies", "relapse_date", "cr_date"),
    ("adverse_events", "resolution_date", "onset_date"),
    ("adverse_events", "worst_grade_date", "onset_date"),
)


def consistency_problems(
    tables: dict[str, ir.Table], cutoff: object, study: StudyDefinition | None = None
) -> Iterator[Problem]:
    """Cross-table problems on typed tables (each must still carry the ``_row`` column).

    ``study``: the declared study definition (arms, regimens, index drug), if the bundle has one.
    """
    index_drug = study.index_drug if study is not None else None
    found = study_findings(tables, study) if study is not None else []
    found += diagnosis_findings(tables["patients"])
    patients = tables["patients"].select("patient_id")
    # No patient read (table missing or unreadable, or no patient_id): one line, not one per row.
    no_patients = int(patients.patient_id.count().execute()) == 0
    if no_patients:
        yield Problem(
            "error",
            "patients",
            "no patient could be read, so the other tables' patient_id values are not checked "
            "against it; fix `patients` first",
            code="key.unknown_patient",
        )
    for model in TABLES:
        t = tables.get(model.name)
        if t is None or not model.patient_scoped or no_patients:
            continue
        orphan = t.anti_join(patients, "patient_id")
        found.append(
            Finding(
                orphan,
                [ROW, "patient_id"],
                lambda r, n=model.name: Problem(
                    "error",
                    n,
                    "references a patient not in `patients`",
                    r[ROW],
                    "patient_id",
                    r["patient_id"],
                    "key.unknown_patient",
                ),
                model.name,
                "key.unknown_patient",
            )
        )

    a = _stored(anchors(tables, index_drug))
    no_anchor = tables["patients"].join(a.filter(a.first_dose.isnull()).select("patient_id"), "patient_id")
    what = f"no {index_drug} exposure" if index_drug else "no exposure to any drug"
    found.append(
        Finding(
            no_anchor,
            [ROW, "patient_id"],
            lambda r: Problem(
                "error",
                "patients",
                f"{what} in `exposures`: study day 1 is undefined",
                r[ROW],
                "patient_id",
                r["patient_id"],
                "anchor.missing",
            ),
            "patients",
            "anchor.missing",
        )
    )

    if cutoff is not None:  # day 1 after the cut-off: no follow-up (every time to event negative)
        late = a.filter(a.first_dose > ibis.literal(cutoff, "date"))
        late_anchor = tables["patients"].join(late.select("patient_id", _day1=late.first_dose.cast("string")),
                                              "patient_id")
        dose = f"first {index_drug} dose" if index_drug else "first dose"
        found.append(
            Finding(
                late_anchor,
                [ROW, "patient_id", "_day1"],
                lambda r: Problem(
                    "error",
                    "patients",
                    f"study day 1 (the {dose}, {r['_day1']}) is after the data cut-off {cutoff}: "
                    "the patient has no follow-up to analyse; correct the date or the cut-off",
                    r[ROW],
                    "patient_id",
                    r["patient_id"],
                    "anchor.after_cutoff",
                ),
                "patients",
                "anchor.after_cutoff",
            )
        )

    # each table joined to the anchors once: the checks on it are counted in one aggregate over it
    with_anchors = {
        m.name: tables[m.name].join(a, "patient_id") for m in TABLES if m.name in tables and m.patient_scoped
    }
    for rule in DATE_ORDER_RULES:
        if rule.table not in tables:
            continue
        j = with_anchors[rule.table]
        cond = j[rule.column] < j[rule.anchor]
        if rule.where:
            cond = (j[rule.where[0]] == rule.where[1]) & cond
        bad = j.filter(cond).mutate(_anchor=j[rule.anchor].cast("string"), _val=j[rule.column].cast("string"))
        found.append(
            Finding(
                bad,
                [ROW, "_val", "_anchor"],
                lambda r, rule=rule: Problem(
                    "error",
                    rule.table,
                    f"{rule.reason} ({rule.anchor.replace('_', ' ')} {r['_anchor']})",
                    r[ROW],
                    rule.column,
                    r["_val"],
                    "date.order",
                ),
                rule.table,
                "date.order",
                j,
                cond,
            )
        )

    for model in TABLES:
        t = tables.get(model.name)
        if t is None or not model.patient_scoped:
            continue
        j = with_anchors[model.name]
        for col in model.date_columns:
            bad = j.filter(j[col] > j.death).mutate(_val=j[col].cast("string"), _d=j.death.cast("string"))
            found.append(
                Finding(
                    bad,
                    [ROW, "_val", "_d"],
                    lambda r, n=model.name, col=col: Problem(
                        "error",
                        n,
                        f"after the patient's death ({r['_d']})",
                        r[ROW],
                        col,
                        r["_val"],
                        "date.order",
                    ),
                    model.name,
                    "date.order",
                    j,
                    j[col] > j.death,
                )
            )
            after = t[col] > ibis.literal(cutoff, "date")
            late = t.filter(after).mutate(_val=t[col].cast("string"))
            found.append(
                Finding(
                    late,
                    [ROW, "_val"],
                    lambda r, n=model.name, col=col: Problem(
                        "warning",
                        n,
                        f"after the data cut-off {cutoff}",
                        r[ROW],
                        col,
                        r["_val"],
                        "date.after_cutoff",
                    ),
                    model.name,
                    "date.after_cutoff",
                    t,
                    after,
                )
            )

    found += clinical_findings(tables, a)

    for name, later, earlier in ROW_ORDER_RULES:
        t = tables.get(name)
        if t is None:
            continue
        before = t[later] < t[earlier]
        bad = t.filter(before).mutate(_val=t[later].cast("string"), _e=t[earlier].cast("string"))
        found.append(
            Finding(
                bad,
                [ROW, "_val", "_e"],
                lambda r, n=name, later=later, earlier=earlier: Problem(
                    "error",
                    n,
                    f"{later} is before {earlier} ({r['_e']})",
                    r[ROW],
                    later,
                    r["_val"],
                    "date.order",
                ),
                name,
                "date.order",
                t,
                before,
            )
        )
    yield from report_findings(found)


def study_findings(tables: dict[str, ir.Table], study: StudyDefinition) -> list[Finding]:
    """The data against the declared study definition: arms and regimens."""
    found: list[Finding] = []
    p = tables["patients"]
    if study.arms:
        bad = p.filter(p.study_arm.notnull() & ~p.study_arm.isin(study.arm_codes))
        found.append(
            Finding(
                bad,
                [ROW, "study_arm"],
                lambda r: Problem(
                    "error",
                    "patients",
                    f"arm not declared in study.yaml; arms: {list(study.arm_codes)}",
                    r[ROW],
                    "study_arm",
                    r["study_arm"],
                    "arm.unknown",
                ),
                "patients",
                "arm.unknown",
            )
        )
    pairs = [(a.code, d) for a in study.arms for d in a.drugs]
    if pairs:
        regimen = ibis.memtable({"study_arm": [a for a, _ in pairs], "drug": [d for _, d in pairs]})
        arms_with_regimen = tuple(sorted({a for a, _ in pairs}))
        ex = tables["exposures"]
        j = ex.join(p.select("patient_id", "study_arm"), "patient_id")
        j = j.filter(j.study_arm.isin(arms_with_regimen))
        off = j.anti_join(regimen, ["study_arm", "drug"])
        found.append(
            Finding(
                off,
                [ROW, "drug", "study_arm"],
                lambda r: Problem(
                    "warning",
                    "exposures",
                    f"drug not in the regimen of arm {r['study_arm']!r} (study.yaml); kept as given",
                    r[ROW],
                    "drug",
                    r["drug"],
                    "drug.not_in_regimen",
                ),
                "exposures",
                "drug.not_in_regimen",
            )
        )
    return found


def diagnosis_findings(patients: ir.Table) -> list[Finding]:
    """A patient without a diagnosis category in any of the model's classifications."""
    found: list[Finding] = []
    none = patients
    for c in DIAGNOSIS_COLUMNS:
        none = none.filter(none[c].isnull())
    found.append(
        Finding(
            none,
            [ROW, "patient_id"],
            lambda r: Problem(
                "warning",
                "patients",
                f"no diagnosis category in any classification ({', '.join(DIAGNOSIS_COLUMNS)})",
                r[ROW],
                "patient_id",
                r["patient_id"],
                "diagnosis.missing",
            ),
            "patients",
            "diagnosis.missing",
        )
    )
    return found


def clinical_findings(tables: dict[str, ir.Table], a: ir.Table) -> list[Finding]:
    """Warnings where the tables contradict each other clinically (the module docstring):
    ``ae.fatal_without_death`` and ``relapse.without_remission``. ``a``: :func:`anchors`."""
    found: list[Finding] = []
    ev = tables["events"]
    ae = tables.get("adverse_events")
    if ae is not None:
        contact = (
            ev.filter(ev.event_type == "last_contact")
            .group_by("patient_id")
            .aggregate(_last=ev.event_date.max())
        )
        alive = a.filter(a.death.isnull()).select("patient_id")
        fatal = ae.filter((ae.grade == 5) | (ae.outcome == "fatal")).join(alive, "patient_id")
        fatal = fatal.left_join(contact, "patient_id").select(fatal, "_last")
        fatal = fatal.mutate(_grade=fatal.grade.cast("string"), _last=fatal._last.cast("string"))
        found.append(
            Finding(
                fatal,
                [ROW, "patient_id", "term", "_grade", "outcome", "_last"],
                _fatal_problem,
                "adverse_events",
                "ae.fatal_without_death",
            )
        )
    relapses = ev.filter(ev.event_type == "relapse").join(
        a.filter(a.first_cr.isnull()).select("patient_id"), "patient_id"
    )
    asm = tables.get("assessments")
    if asm is not None:
        marrow = asm.filter(asm.marrow_blasts_pct < REMISSION_MARROW_BLASTS_PCT).select(
            _pid=asm.patient_id, _mdate=asm.assessment_date
        )
        relapses = relapses.anti_join(
            marrow, [relapses.patient_id == marrow._pid, marrow._mdate < relapses.event_date]
        )
    pt = tables.get("prior_therapies")
    if pt is not None:
        # the patient's last prior line (a later line ends an earlier line's remission)
        last_line = pt.group_by("patient_id").aggregate(_line=pt.line.max())
        final = pt.join(last_line, [pt.patient_id == last_line.patient_id, pt.line == last_line._line])
        remission = final.response.isin(("cr", "cri")) & final.relapse_date.isnull()
        in_cr = final.filter(remission & ~final.relapsed.fill_null(False)).select("patient_id")
        relapses = relapses.anti_join(in_cr, "patient_id")
    relapses = relapses.mutate(_date=relapses.event_date.cast("string"))
    found.append(
        Finding(
            relapses,
            [ROW, "patient_id", "event_type", "_date"],
            lambda r: Problem(
                "warning",
                "events",
                f"relapse of patient {r['patient_id']} on {r['_date']} with no remission recorded "
                f"before it: no `cr_reported` event, no assessment before {r['_date']} with marrow "
                f"blasts below {REMISSION_MARROW_BLASTS_PCT:g} %, no last prior line ending in a CR or "
                "CRi without relapse. A relapse presupposes a remission: enter it (a `cr_reported` "
                "event, the remission marrow) or correct the event; kept as given",
                r[ROW],
                "event_type",
                r["event_type"],
                "relapse.without_remission",
            ),
            "events",
            "relapse.without_remission",
        )
    )
    return found


def _fatal_problem(r: dict) -> Problem:
    fatal_grade = r["_grade"] == "5"
    what = "grade 5 (fatal)" if fatal_grade else "outcome 'fatal'"
    last = r["_last"]
    status = f"alive at last contact {last}" if last is not None else "no death or last contact recorded"
    return Problem(
        "warning",
        "adverse_events",
        f"{what} adverse event {r['term']!r} of patient {r['patient_id']}, for whom `events` records "
        f"no death ({status}): enter the death, or correct the grade or outcome; kept as given",
        r[ROW],
        "grade" if fatal_grade else "outcome",
        r["_grade"] if fatal_grade else r["outcome"],
        "ae.fatal_without_death",
    )
