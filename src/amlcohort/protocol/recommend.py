"""Protocol rules evaluated on one patient's data up to a date, each giving a recommendation.

Every recommendation carries the rule that produced it (rule set, version, rule id, the criterion
as written in the rule file), the values it was evaluated on (with their dates), the inputs that
were missing (three-valued logic: nothing is guessed) and its source (paper section or label).
Only data on or before the date is read (:func:`~amlcohort.protocol.timeline.as_of`).

Rules (thresholds in the protocol's rule CSV, read by :mod:`amlcohort.criteria.engine`):

Each rule set is optional in a protocol file; only those it names are evaluated.

* ``stopping_rule`` -- the study's stopping rule, rule set ``protocol.stopping_rule`` shared with
  :func:`amlcohort.endpoints.analysis.stopping_rule` (weeks 2-3 = study days 9-22; before day 22
  the maximum so far);
* ``rbc_transfusion``, ``platelet_transfusion`` -- latest hemoglobin / platelet count; symptoms
  and bleeding are not in the cohort model and are taken from ``observations``
  (``symptomatic_anemia``, ``bleeding``; unrecorded = missing, named in the result);
* ``g_csf``, ``antifungal_prophylaxis`` -- latest ANC;
* ``skin_dose_modification`` -- each skin toxicity active on the date (or resolved in the last 7 days);
* response assessment due -- from the schedule (marrow items);
* the treatment pathway (maintenance and HSCT referral after CR; salvage or HSCT after failure).

This is research software for protocol documentation: not a medical device, no treatment advice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir

from amlcohort.criteria import response as resp
from amlcohort.criteria.engine import NOT_EVALUABLE, RuleSet, apply_rules, evaluate
from amlcohort.endpoints.blast_patterns import WEEKS_2_3, baseline_marrow, marrows
from amlcohort.io.cohort import Cohort
from amlcohort.protocol.definition import Protocol, cohort_protocol
from amlcohort.protocol.surveillance import check_date, check_patient, due_items, patient_state
from amlcohort.protocol.timeline import AsOf, as_of, bound, days_between, index_drug

OBSERVATIONS = ("symptomatic_anemia", "bleeding")
# Recommendation texts; ``{drug}`` is the drug the rule acts on, from the protocol file (the index
# drug for the stopping rule, ``dose_modification.drug`` for the skin rule).
ACTIONS: dict[str, str] = {
    "stop": "Stop {drug} (stopping rule: marrow blasts in weeks 2-3 above the pre-treatment marrow)",
    "continue": "Stopping rule not met: {drug} may continue",
    "transfuse_rbc": "Red-cell transfusion indicated",
    "transfuse_platelets": "Platelet transfusion indicated",
    "give_g_csf": "G-CSF indicated (neutrophils below threshold)",
    "give_antifungal_prophylaxis": (
        "Antifungal prophylaxis (voriconazole or posaconazole) indicated: neutropenic"
    ),
    "continue_topical": "Continue {drug}; consider topical therapy for symptomatic relief",
    "interrupt_then_reduce": "Interrupt {drug} until grade 0-1, then resume one dose level lower",
    "discontinue": "Discontinue {drug}",
    "not_indicated": "Not indicated by this rule",
    "marrow_due": "Bone-marrow aspirate due (abnormal blood counts after CR)",
    "no_marrow_due": "Blood counts within the CR criteria",
    "response_assessment_due": "Response assessment due: marrow aspirate with spicules and blood counts",
    "pathway": "Treatment pathway step",
    NOT_EVALUABLE: "Not evaluable: an input is missing",
}
NO_ACTION = frozenset({"continue", "not_indicated", "no_marrow_due", NOT_EVALUABLE})
ANY_DRUG = "the study drugs"


def action_text(outcome: str, drug: str | None = None) -> str:
    """The recommendation text of ``outcome``, naming ``drug`` (any study drug when None)."""
    return ACTIONS.get(outcome, "No rule applies").format(drug=drug or ANY_DRUG)


@dataclass(frozen=True)
class Recommendation:
    patient_id: str
    on: dt.date
    topic: str
    rule_id: str | None
    ruleset: str
    version: str
    outcome: str | None
    action: str
    values: Mapping[str, Any] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    source: str = ""
    criterion: str | None = None

    @property
    def fires(self) -> bool:
        return self.outcome is not None and self.outcome not in NO_ACTION

    @property
    def rule(self) -> str:
        return f"{self.ruleset} v{self.version}: {self.rule_id or '-'}"

    def describe(self) -> str:
        vals = ", ".join(f"{k}={_fmt(v)}" for k, v in self.values.items())
        miss = f"; missing: {', '.join(self.missing)}" if self.missing else ""
        return f"{self.topic}: {self.action} [{self.rule}; {vals}{miss}] (source: {self.source})"


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


# ---- shared Ibis inputs -------------------------------------------------------------------------


def latest_values(cohort: Cohort | AsOf, columns: tuple[str, ...]) -> ir.Table:
    """Per patient: the latest non-missing value of each assessments column, and its date."""
    a = cohort.table("assessments")
    pts = cohort.table("patients").select("patient_id")
    out = pts
    for c in columns:
        t = a.filter(a[c].notnull())
        t = t.group_by("patient_id").aggregate(
            **{c: t[c].argmax(t.assessment_date), f"{c}_date": t.assessment_date.max()}
        )
        out = out.left_join(t, "patient_id").drop("patient_id_right")
    return out


def stopping_rule_marrows(cohort: Cohort | AsOf, protocol: Protocol | None = None) -> ir.Table:
    """One row per marrow in weeks 2-3 (study days 9-22), with the stopping rule on the data so far.

    Columns: patient_id, assessment_date, assessment_study_day, marrow_blasts_pct,
    baseline_marrow_blasts_pct (last marrow on or before the first dose), weeks_2_3_max_blasts_pct
    (running maximum), outcome, rule_id, missing. The rule set is ``protocol.stopping_rule``, the one
    :func:`amlcohort.endpoints.analysis.stopping_rule` runs.
    """
    p = cohort_protocol(cohort, protocol)
    base = baseline_marrow(cohort)
    m = marrows(cohort)
    w = m.filter(m.assessment_study_day.between(*WEEKS_2_3))
    w = w.left_join(base, "patient_id").select(
        w.patient_id,
        w.assessment_date,
        w.assessment_study_day,
        w.marrow_blasts_pct,
        base.baseline_marrow_blasts_pct,
    )
    w = w.mutate(
        weeks_2_3_max_blasts_pct=w.marrow_blasts_pct.max().over(
            ibis.window(group_by="patient_id", order_by="assessment_date", preceding=None, following=0)
        )
    )
    return apply_rules(p.ruleset("stopping_rule"), w, outcome="outcome", rule_id="rule_id", missing="missing")


def skin_events(cohort: Cohort | AsOf, protocol: Protocol | None = None) -> ir.Table:
    """Skin toxicities (protocol ``dose_modification.skin_terms``) with the skin dose-modification rule.

    ``occurrence`` = ordinal among the patient's skin toxicities of grade >= 2 (by onset);
    ``days_unresolved`` = days from onset to resolution (or to the bound, when unresolved);
    ``skin_grade`` = the reported worst grade, known from its date on (NULL before).
    """
    p = cohort_protocol(cohort, protocol)
    end = ibis.literal(bound(cohort), "date")
    ae = cohort.table("adverse_events")
    terms = p.dose_modification.skin_terms if p.dose_modification is not None else ()
    ae = ae.filter(ae.term.isin(terms))
    win = ibis.window(group_by="patient_id", order_by=["onset_date", "term"], preceding=None, following=0)
    ae = ae.mutate(
        skin_grade=ae.grade.cast("float64"),
        occurrence=ibis.ifelse((ae.grade >= 2).fill_null(False), 1, 0).sum().over(win).cast("float64"),
        days_unresolved=days_between(ae.resolution_date.fill_null(end), ae.onset_date).cast("float64"),
        grade_known_date=ibis.coalesce(ae.worst_grade_date, ae.onset_date),
    )
    return apply_rules(p.ruleset("skin_dose_modification"), ae, outcome="outcome", rule_id="rule_id",
                       missing="missing")


# ---- one patient ----------------------------------------------------------------------------


def _rec(
    pid: str,
    on: dt.date,
    topic: str,
    rs: RuleSet,
    values: dict,
    shown: dict | None = None,
    drug: str | None = None,
) -> Recommendation:
    ev = evaluate(rs, {k: v for k, v in values.items() if k in rs.variables})
    action = action_text(ev.outcome, drug) if ev.outcome else "No rule applies"
    if ev.outcome == NOT_EVALUABLE:
        action = f"Not evaluable: {', '.join(ev.missing)} not recorded"
    rule = rs.rule(ev.rule_id) if ev.rule_id else None
    return Recommendation(
        pid,
        on,
        topic,
        ev.rule_id,
        rs.name,
        rs.version,
        ev.outcome,
        action,
        shown if shown is not None else values,
        ev.missing,
        rule.source if rule else "",
        ev.criterion,
    )


def recommendations(
    cohort: Cohort,
    patient_id: str,
    on: dt.date,
    *,
    protocol: Protocol | None = None,
    observations: Mapping[str, bool | None] | None = None,
    _items: list | None = None,
    _state: dict | None = None,
) -> list[Recommendation]:
    """Every protocol rule evaluated for ``patient_id`` on the data known on ``on`` (firing or not)."""
    p = cohort_protocol(cohort, protocol)
    obs = dict(observations or {})
    unknown = set(obs) - set(OBSERVATIONS)
    if unknown:
        raise KeyError(f"unknown observation(s) {sorted(unknown)}; known: {', '.join(OBSERVATIONS)}")
    check_patient(cohort, patient_id)
    check_date(cohort, patient_id, on)
    view = as_of(cohort, on)
    state = _state if _state is not None else patient_state(cohort, patient_id, on, p)
    pid, out = patient_id, []
    if state["first_dose"] is None:
        return out

    # latest counts
    lv = latest_values(view, ("hemoglobin", "platelets", "anc"))
    row = (lv.filter(lv.patient_id == pid).to_pyarrow().to_pylist() or [{}])[0]
    hb = {"hemoglobin": row.get("hemoglobin"), "symptomatic_anemia": obs.get("symptomatic_anemia")}
    plt = {"platelets": row.get("platelets"), "bleeding": obs.get("bleeding")}
    for key, topic, vals, shown in (
        (
            "rbc_transfusion",
            "Red-cell transfusion",
            hb,
            {**hb, "hemoglobin_date": row.get("hemoglobin_date")},
        ),
        (
            "platelet_transfusion",
            "Platelet transfusion",
            plt,
            {**plt, "platelets_date": row.get("platelets_date")},
        ),
    ):
        if p.has_rule(key):
            out.append(_rec(pid, on, topic, p.ruleset(key), vals, shown))
    sc = view.table("supportive_care")
    on_lit = ibis.literal(on, "date")
    active = sc.filter(
        (sc.patient_id == pid) & (sc.start_date <= on_lit) & (sc.end_date.fill_null(on_lit) >= on_lit)
    )
    active_cats = set(active.category.to_pyarrow().to_pylist())
    anc = {"anc": row.get("anc")}
    for key, topic, cat in (
        ("g_csf", "G-CSF", "g_csf"),
        ("antifungal_prophylaxis", "Antifungal prophylaxis", "antifungal_prophylaxis"),
    ):
        if not p.has_rule(key):
            continue
        out.append(
            _rec(
                pid,
                on,
                topic,
                p.ruleset(key),
                anc,
                {**anc, "anc_date": row.get("anc_date"), f"{cat}_active_on_date": cat in active_cats},
            )
        )

    # stopping rule (during induction, or once it has fired)
    marrows: list[dict] = []
    if p.has_rule("stopping_rule"):
        sr = stopping_rule_marrows(view, p)
        marrows = sr.filter(sr.patient_id == pid).order_by("assessment_date").to_pyarrow().to_pylist()
    if p.has_rule("stopping_rule") and (
        state["phase"] == "induction" or any(m["outcome"] == "stop" for m in marrows)
    ):
        base = _baseline(view, pid)
        last = marrows[-1] if marrows else {}
        fired = next((m for m in marrows if m["outcome"] == "stop"), None)
        vals = {
            "baseline_marrow_blasts_pct": base,
            "weeks_2_3_max_blasts_pct": last.get("weeks_2_3_max_blasts_pct"),
        }
        shown = {
            **vals,
            "weeks_2_3": f"study days {WEEKS_2_3[0]}-{WEEKS_2_3[1]}",
            "fired_on": fired["assessment_date"] if fired else None,
        }
        out.append(
            _rec(
                pid,
                on,
                "Stopping rule",
                p.ruleset("stopping_rule"),
                vals,
                shown,
                index_drug(cohort, p),
            )
        )

    # skin toxicity dose modification
    dm = p.dose_modification
    skin: list[dict] = []
    if dm is not None and p.has_rule("skin_dose_modification"):
        se = skin_events(view, p)
        week_ago = ibis.literal(on - dt.timedelta(days=7), "date")
        se = se.filter(
            (se.patient_id == pid) & (se.resolution_date.isnull() | (se.resolution_date >= week_ago))
        )
        skin = se.order_by("onset_date").to_pyarrow().to_pylist()
    for ev in skin:
        vals = {
            "skin_grade": ev["skin_grade"],
            "occurrence": ev["occurrence"],
            "days_unresolved": ev["days_unresolved"],
        }
        shown = {
            "term": ev["term"],
            "onset_date": ev["onset_date"],
            **vals,
            "resolution_date": ev["resolution_date"],
        }
        r = _rec(
            pid,
            on,
            f"Skin toxicity: {dm.drug} dose modification",
            p.ruleset("skin_dose_modification"),
            vals,
            shown,
            dm.drug,
        )
        out.append(r)

    # response assessment due (schedule)
    items = (
        _items
        if _items is not None
        else (due_items(cohort, pid, on, p) if state["phase"] in ("induction", "post_cr") else [])
    )
    latest = _latest_response(view, pid)
    for it in items:
        if it.response_assessment and it.status in ("due", "overdue"):
            out.append(
                Recommendation(
                    pid,
                    on,
                    "Response assessment",
                    it.item_id,
                    f"protocol.{p.id}.surveillance",
                    p.version,
                    "response_assessment_due",
                    action_text("response_assessment_due"),
                    {
                        "due_date": it.due_date,
                        "status": it.status,
                        "days_overdue": it.days_overdue,
                        "recorded_on_date": it.done_on_date,
                        **latest,
                    },
                    (),
                    f"{it.source}; response criteria: {p.response_criteria_source}"
                    if p.response_criteria_source
                    else it.source,
                    f"every {it.interval} (schedule)",
                )
            )

    # pathway
    out += _pathway(cohort, p, pid, on, state, marrows)
    return out


def _baseline(view: AsOf, pid: str) -> float | None:
    a = view.table("assessments")
    fd = view.first_dose()
    m = a.filter((a.patient_id == pid) & a.marrow_blasts_pct.notnull()).join(fd, "patient_id")
    m = m.filter(m.assessment_date <= m.first_dose)
    rows = m.order_by(ibis.desc("assessment_date")).limit(1).marrow_blasts_pct.to_pyarrow().to_pylist()
    return rows[0] if rows else None


def _latest_response(view: AsOf, pid: str) -> dict:
    r = resp.derive(view)
    rows = (
        r.filter(r.patient_id == pid)
        .order_by(ibis.desc("assessment_date"))
        .limit(1)
        .select("assessment_date", "response", "rule_id")
        .to_pyarrow()
        .to_pylist()
    )
    if not rows:
        return {"latest_response": None}
    return {
        "latest_response": rows[0]["response"],
        "latest_response_date": rows[0]["assessment_date"],
        "latest_response_rule": rows[0]["rule_id"],
    }


def _pathway(
    cohort: Cohort, p: Protocol, pid: str, on: dt.date, state: dict, marrows: list
) -> list[Recommendation]:
    pts = cohort.table("patients")
    info = pts.filter(pts.patient_id == pid).select("age_at_onset", "ecog_ps").to_pyarrow().to_pylist()[0]
    cr = state.get("first_cr_date")
    failed = cr is None and (state["phase"] == "off_protocol" or any(m["outcome"] == "stop" for m in marrows))
    out = []
    for step in p.pathway:
        applies = (step.when == "cr" and cr is not None) or (step.when == "failure" and failed)
        if not applies:
            continue
        vals: dict[str, Any] = (
            {"first_cr_date": cr}
            if step.when == "cr"
            else {"phase": state["phase"], "off_reason": state.get("off_reason")}
        )
        vals.update(info)
        out.append(
            Recommendation(
                pid,
                on,
                "Treatment pathway",
                step.id,
                f"protocol.{p.id}.pathway",
                p.version,
                "pathway",
                step.text,
                vals,
                (),
                step.source,
                f"when {step.when}",
            )
        )
    return out
