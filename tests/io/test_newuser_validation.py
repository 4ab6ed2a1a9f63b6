"""Validation defects a trial as a new user found: each is a warning (the data may be legitimate)
naming code, table, row, column and value, with the threshold's both sides.

* ``unit.implausible``: blood counts declared per microlitre whose largest value in the table is
  implausibly small (the values are in 10^9/L; read as /uL every CR would silently be a CRi);
* ``ae.fatal_without_death``: a grade-5 or ``fatal`` adverse event of a patient with no death;
* ``relapse.without_remission``: a relapse with no remission recorded before it in the raw data.

Each case edits a copy of the embedded study bundle (valid, no problem at all).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests.io.test_validation import read_table, write_table

from amlcohort import InputError, load_cohort, validate_bundle
from amlcohort.io.consistency import REMISSION_MARROW_BLASTS_PCT
from amlcohort.io.validate import PER_MICROLITRE_FLOOR


def set_cell(bundle: Path, table: str, where: dict[str, str], column: str, value: str) -> int:
    """Set ``column`` of the first row matching ``where``; return its 1-based data row."""
    header, data = read_table(bundle, table)
    hits = [i for i, r in enumerate(data) if all(r[k] == v for k, v in where.items())]
    assert hits, f"no row of {table} matches {where}"
    data[hits[0]][column] = value
    write_table(bundle, table, header, data)
    return hits[0] + 1


def set_units(bundle: Path, **units: str) -> None:
    meta = yaml.safe_load((bundle / "metadata.yaml").read_text(encoding="utf-8"))
    meta["units"].update(units)
    (bundle / "metadata.yaml").write_text(yaml.safe_dump(meta), encoding="utf-8")


def found(bundle: Path, code: str) -> list:
    report, _ = validate_bundle(bundle)
    return [p for p in report.problems if p.code == code]


def where(p) -> tuple:
    return (p.severity, p.code, p.table, p.row, p.column, p.value)


# ---- 1. counts declared per microlitre whose values are in 10^9/L ----------------------------------


def test_anc_in_si_declared_per_microlitre_is_a_warning_and_the_bundle_still_loads(bundle_copy):
    """The embedded ANC (0.1-2.4 x10^9/L) declared /uL: one warning at the largest value (the
    first row holding 2.4), and the bundle loads with the values as declared."""
    set_units(bundle_copy, anc="/uL")
    report, cohort = validate_bundle(bundle_copy)
    assert [where(p) for p in report.problems] == [
        ("warning", "unit.implausible", "assessments", 15, "anc", "2.4")
    ]
    p = report.problems[0]
    assert "below 50/uL" in p.reason and "look like 10^9/L" in p.reason
    assert cohort is not None  # a warning: kept as given
    a = cohort.table("assessments")
    assert a.anc.max().execute() == pytest.approx(0.0024)


@pytest.mark.parametrize("column", ["anc", "platelets", "wbc"])
@pytest.mark.parametrize("unit", ["/uL", "/mm3"])
@pytest.mark.parametrize(("below", "warned"), [(True, True), (False, False)], ids=["below_floor", "at_floor"])
def test_count_per_microlitre_largest_value_against_its_floor(bundle_copy, column, unit, below, warned):
    """Every value of the column a tenth of the floor, one row's the largest: just below the floor
    (floor - 0.1) is the warning at that row, exactly the floor is none."""
    floor = PER_MICROLITRE_FLOOR[column]
    assert floor == {"anc": 50, "platelets": 1500, "wbc": 300}[column]
    header, data = read_table(bundle_copy, "assessments")
    for r in data:
        if r[column]:
            r[column] = f"{floor / 10:g}"
    top = next(i for i, r in enumerate(data) if r["patient_id"] == "P05" and r[column])
    data[top][column] = f"{floor - 0.1:g}" if below else f"{floor:g}"
    write_table(bundle_copy, "assessments", header, data)
    set_units(bundle_copy, **{column: unit})
    got = [where(p) for p in found(bundle_copy, "unit.implausible")]
    expected = [("warning", "unit.implausible", "assessments", top + 1, column, data[top][column])]
    assert got == (expected if warned else [])


def test_counts_really_per_microlitre_or_small_in_si_are_not_warned(bundle_copy):
    """Real /uL values (the embedded ANC and platelets x 1000) and small values declared in
    10^9/L are not this warning: only a per-microlitre declaration is checked."""
    header, data = read_table(bundle_copy, "assessments")
    for r in data:
        for c in ("anc", "platelets"):
            if r[c]:
                r[c] = str(round(float(r[c]) * 1000))
    write_table(bundle_copy, "assessments", header, data)
    set_units(bundle_copy, anc="/uL", platelets="/uL")
    report, cohort = validate_bundle(bundle_copy)
    assert report.problems == () and cohort is not None

    header, data = read_table(bundle_copy, "assessments")
    for r in data:
        if r["wbc"]:
            r["wbc"] = "0.2"
    write_table(bundle_copy, "assessments", header, data)
    assert found(bundle_copy, "unit.implausible") == []  # wbc is declared 10^9/L


def test_lower_limit_of_normal_per_microlitre_in_si_is_warned(bundle_copy):
    """An ANC lower limit of normal declared /uL but written 1.8 (x10^9/L): warned; 1800: not."""
    header, data = read_table(bundle_copy, "assessments")
    header.append("anc_lln")
    for r in data:
        r["anc_lln"] = "1.8" if r["anc"] else ""
    write_table(bundle_copy, "assessments", header, data)
    set_units(bundle_copy, anc_lln="/uL")
    first = next(i for i, r in enumerate(data) if r["anc_lln"]) + 1
    assert [where(p) for p in found(bundle_copy, "unit.implausible")] == [
        ("warning", "unit.implausible", "assessments", first, "anc_lln", "1.8")
    ]
    for r in data:
        r["anc_lln"] = "1800" if r["anc"] else ""
    write_table(bundle_copy, "assessments", header, data)
    assert found(bundle_copy, "unit.implausible") == []


# ---- 2. a fatal adverse event of a patient with no death --------------------------------------------


def test_grade_5_adverse_event_of_a_patient_alive_at_last_contact(bundle_copy):
    row = set_cell(bundle_copy, "adverse_events", {"patient_id": "P01", "term": "Rash maculo-papular"},
                   "grade", "5")
    report, cohort = validate_bundle(bundle_copy)
    assert [where(p) for p in report.problems] == [
        ("warning", "ae.fatal_without_death", "adverse_events", row, "grade", "5")
    ]
    assert row == 2
    reason = report.problems[0].reason
    assert "patient P01" in reason and "alive at last contact 2019-09-20" in reason
    assert "'Rash maculo-papular'" in reason
    assert cohort is not None


@pytest.mark.parametrize(("grade", "warned"), [("5", True), ("4", False)])
def test_grade_boundary_of_a_fatal_adverse_event(bundle_copy, grade, warned):
    row = set_cell(bundle_copy, "adverse_events", {"patient_id": "P01", "term": "Neutrophil count decreased"},
                   "grade", grade)
    got = [where(p) for p in found(bundle_copy, "ae.fatal_without_death")]
    expected = [("warning", "ae.fatal_without_death", "adverse_events", row, "grade", "5")]
    assert got == (expected if warned else [])


def test_fatal_outcome_of_a_patient_without_death_or_last_contact(bundle_copy):
    """Outcome `fatal` (grade 3) is named by its outcome; without any follow-up event the reason
    says that no death or last contact is recorded."""
    row = set_cell(bundle_copy, "adverse_events", {"patient_id": "P01", "term": "Neutrophil count decreased"},
                   "outcome", "fatal")
    header, data = read_table(bundle_copy, "events")
    write_table(bundle_copy, "events", header,
                [r for r in data if not (r["patient_id"] == "P01" and r["event_type"] == "last_contact")])
    (p,) = found(bundle_copy, "ae.fatal_without_death")
    assert where(p) == ("warning", "ae.fatal_without_death", "adverse_events", row, "outcome", "fatal")
    assert row == 1 and "patient P01" in p.reason and "no death or last contact recorded" in p.reason


def test_fatal_adverse_event_of_a_patient_who_died_is_not_warned(bundle_copy):
    """P03 died (2018-02-24) after the onset of the AE: grade 5 with outcome fatal is consistent."""
    set_cell(bundle_copy, "adverse_events", {"patient_id": "P03"}, "grade", "5")
    set_cell(bundle_copy, "adverse_events", {"patient_id": "P03"}, "outcome", "fatal")
    report, cohort = validate_bundle(bundle_copy)
    assert report.problems == () and cohort is not None


def test_death_before_a_fatal_adverse_events_onset_is_an_error(bundle_copy):
    """Already checked before this work (every date of a patient after the death is date.order):
    a fatal AE whose onset is after the recorded death."""
    row = set_cell(bundle_copy, "adverse_events", {"patient_id": "P03"}, "grade", "5")
    set_cell(bundle_copy, "adverse_events", {"patient_id": "P03"}, "onset_date", "2018-02-25")
    with pytest.raises(InputError) as info:
        load_cohort(bundle_copy)
    onset = [p for p in info.value.errors if p.code == "date.order" and p.column == "onset_date"]
    assert [where(p) for p in onset] == [
        ("error", "date.order", "adverse_events", row, "onset_date", "2018-02-25")
    ]
    assert "after the patient's death (2018-02-24)" in onset[0].reason


# ---- 3. a relapse with no remission recorded before it ---------------------------------------------


def _p07_relapse(bundle: Path) -> int:
    """P07 (no CR reported, every marrow >= 22 % blasts, last prior line a CR that relapsed): its
    HSCT event of 2018-11-13 turned into a relapse. Returns the event's row."""
    set_cell(bundle, "events", {"patient_id": "P07", "event_type": "hsct"}, "hsct_donor", "")
    return set_cell(bundle, "events", {"patient_id": "P07", "event_type": "hsct"}, "event_type", "relapse")


def test_relapse_without_any_remission_is_a_warning(bundle_copy):
    row = _p07_relapse(bundle_copy)
    report, cohort = validate_bundle(bundle_copy)
    assert [where(p) for p in report.problems] == [
        ("warning", "relapse.without_remission", "events", row, "event_type", "relapse")
    ]
    assert row == 15
    assert "patient P07 on 2018-11-13" in report.problems[0].reason
    assert cohort is not None


@pytest.mark.parametrize(
    ("blasts", "date", "warned"),
    [
        ("4.9", "2018-11-12", False),  # below 5 % the day before the relapse: a remission
        ("5", "2018-11-12", True),  # 5 % is not a remission
        ("4.9", "2018-11-13", True),  # on the relapse date itself: not before it
    ],
    ids=["below_5_before", "at_5_before", "below_5_same_day"],
)
def test_marrow_remission_before_the_relapse(bundle_copy, blasts, date, warned):
    assert REMISSION_MARROW_BLASTS_PCT == 5
    row = _p07_relapse(bundle_copy)
    sel = {"patient_id": "P07", "assessment_date": "2018-09-10"}
    set_cell(bundle_copy, "assessments", sel, "marrow_blasts_pct", blasts)
    set_cell(bundle_copy, "assessments", sel, "assessment_date", date)
    got = [where(p) for p in found(bundle_copy, "relapse.without_remission")]
    assert got == ([("warning", "relapse.without_remission", "events", row, "event_type", "relapse")]
                   if warned else [])


def test_relapse_after_a_marrow_remission_not_reported_as_cr_is_not_warned(bundle_copy):
    """P06 without its `cr_reported` event: its marrow below 5 % from 2017-04-17 is the remission."""
    header, data = read_table(bundle_copy, "events")
    write_table(bundle_copy, "events", header,
                [r for r in data if not (r["patient_id"] == "P06" and r["event_type"] == "cr_reported")])
    assert found(bundle_copy, "relapse.without_remission") == []


@pytest.mark.parametrize(("relapsed", "relapse_date", "warned"),
                         [("false", "", False), ("true", "", True), ("", "2017-09-20", True)])
def test_relapse_of_a_patient_entering_in_remission(bundle_copy, relapsed, relapse_date, warned):
    """The last prior line (P07's line 5, HSCT) a CR without relapse: the patient entered in
    remission, the relapse is not warned; a relapse recorded on that line is."""
    row = _p07_relapse(bundle_copy)
    line = {"patient_id": "P07", "line": "5"}
    set_cell(bundle_copy, "prior_therapies", line, "relapsed", relapsed)
    set_cell(bundle_copy, "prior_therapies", line, "relapse_date", relapse_date)
    if not relapse_date:
        set_cell(bundle_copy, "prior_therapies", line, "relapse_interval_months", "")
    got = [where(p) for p in found(bundle_copy, "relapse.without_remission")]
    assert got == ([("warning", "relapse.without_remission", "events", row, "event_type", "relapse")]
                   if warned else [])


def test_an_earlier_prior_remission_ended_by_a_later_line_is_not_a_remission(bundle_copy):
    """P07's line 4 is a CR with `relapsed` false, but line 5 came after it: still warned."""
    row = _p07_relapse(bundle_copy)
    _, data = read_table(bundle_copy, "prior_therapies")
    assert any(r["patient_id"] == "P07" and r["line"] == "4" and r["relapsed"] == "false" for r in data)
    assert [where(p) for p in found(bundle_copy, "relapse.without_remission")] == [
        ("warning", "relapse.without_remission", "events", row, "event_type", "relapse")
    ]
