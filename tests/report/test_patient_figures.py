"""The figures that draw one line or lane per patient (marrow blasts, swimmer) read the patients'
rows only when they draw them: in a cohort of more than MAX_PATIENTS_DRAWN patients the engine
counts them first, and above the cap no row comes into Python. Whenever a figure is drawn, its
frames equal those read the plain way (every row into pandas, then filtered), written out here as
the reference; both ways of reading (a small cohort read whole, a large one read by patient) are
checked."""

from __future__ import annotations

import dataclasses

import ibis.expr.types.relations as relations
import numpy as np
import pandas as pd
import pytest

from amlcohort import load_cohort
from amlcohort.report import build
from amlcohort.report.results import analyse, materialise


@pytest.fixture(scope="module")
def a():
    return analyse(materialise(load_cohort()))


def _blasts_plain(a, cr: bool) -> pd.DataFrame:
    t = a.cohort.table("assessments")
    m = t.filter(t.marrow_blasts_pct.notnull()).select(
        "patient_id", study_day=t.assessment_study_day, marrow_blasts_pct=t.marrow_blasts_pct
    ).execute()
    m = m[m.patient_id.isin(a.patients.index[a.patients.cr == cr])].copy()
    m["group"] = m.patient_id.map(a.patients.study_arm).map(a.arm_label)
    return m


def _swimmer_plain(a) -> tuple[pd.DataFrame, pd.DataFrame]:
    p = a.patients
    ex = a.cohort.table("exposures").select("patient_id", "drug", "phase", "start_date", "end_date").execute()
    first = ex.patient_id.map(p.first_dose)
    cutoff = pd.Timestamp(a.cohort.metadata.cutoff_date)
    ex["start_day"] = [(s - f).days if pd.notna(f) else np.nan
                       for s, f in zip(ex.start_date, first, strict=True)]
    end = pd.to_datetime(ex.end_date).fillna(cutoff)
    ex["end_day"] = [(e - f).days if pd.notna(f) else np.nan for e, f in zip(end, first, strict=True)]
    ex["kind"] = [f"{d} {ph}" if isinstance(ph, str) and ph else str(d)
                  for d, ph in zip(ex.drug, ex.phase, strict=True)]
    ex = ex.dropna(subset=["start_day", "end_day"])
    last = p.os_days.dropna()
    off = pd.DataFrame({"patient_id": last.index, "start_day": 0.0, "end_day": last.values,
                        "kind": "off treatment"})
    names = {"cr_reported": "CR", "hsct": "HSCT", "relapse": "relapse", "death": "death",
             "last_contact": "last contact"}
    ev = a.cohort.table("events").execute()
    ev = ev[ev.event_type.isin(list(names))]
    fd = ev.patient_id.map(p.first_dose)
    events = pd.DataFrame({
        "patient_id": ev.patient_id, "event": ev.event_type.map(names),
        "day": [(d - f).days if pd.notna(f) else np.nan for d, f in zip(ev.event_date, fd, strict=True)],
    }).dropna(subset=["day"])
    bars = pd.concat([off, ex[["patient_id", "start_day", "end_day", "kind"]]], ignore_index=True)
    return bars, events


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    cols = list(want.columns)
    order = [c for c in cols if c != "group"]
    got = got[cols].sort_values(order).reset_index(drop=True)
    want = want[cols].sort_values(order).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


@pytest.mark.parametrize("cap", [200, 12])  # 13 patients: read whole; read by patient (groups <= 12)
@pytest.mark.parametrize("cr", [True, False])
def test_blasts_read_the_plain_way_rows(a, cr, cap, monkeypatch):
    monkeypatch.setattr(build, "MAX_PATIENTS_DRAWN", cap)
    data, crowded = build._blasts(a)[cr]
    assert crowded is None
    want = _blasts_plain(a, cr)
    assert 0 < want.patient_id.nunique() <= cap
    _same(data, want)


def test_swimmer_bars_and_events_are_the_plain_way_ones(a):
    bars, events, overlays, crowded = build._swimmer(a)
    assert crowded is None
    want_bars, want_events = _swimmer_plain(a)
    _same(bars, want_bars)
    _same(events, want_events)
    # the embedded study: sorafenib throughout, cytarabine courses drawn over it
    assert overlays and all(not k.startswith("Sorafenib") for k in overlays)


def test_swimmer_read_by_patient_is_the_plain_way_one(monkeypatch):
    """Two of the 13 patients without exposures (so without a first dose, a bar or an event day):
    with the cap at 12 the engine counts 11 patients with a bar and reads theirs."""
    cohort = load_cohort()
    ex = cohort.tables["exposures"]
    dropped = sorted(ex.select("patient_id").distinct().execute().patient_id)[-2:]
    cohort = dataclasses.replace(cohort, tables={**cohort.tables,
                                                 "exposures": ex.filter(~ex.patient_id.isin(dropped))})
    b = analyse(materialise(cohort))
    assert len(b.patients) == 13
    monkeypatch.setattr(build, "MAX_PATIENTS_DRAWN", 12)
    bars, events, _, crowded = build._swimmer(b)
    assert crowded is None
    want_bars, want_events = _swimmer_plain(b)
    assert want_bars.patient_id.nunique() == 11 and not set(dropped) & set(want_bars.patient_id)
    _same(bars, want_bars)
    _same(events, want_events)


def test_above_the_cap_the_patients_rows_are_not_read(a, monkeypatch):
    cap = 3  # 13 patients: the engine counts them
    bars_plain, _ = _swimmer_plain(a)
    drawn = {cr: _blasts_plain(a, cr) for cr in (True, False)}
    treated = bars_plain.patient_id.nunique()
    # the plain way reads more rows than there are patients: the check below can tell them apart
    assert min(len(bars_plain) - treated, *(len(d) for d in drawn.values())) > len(a.patients)
    monkeypatch.setattr(build, "MAX_PATIENTS_DRAWN", cap)
    sizes: list[int] = []
    execute = relations.Table.execute

    def counted(self, *args, **kwargs):
        out = execute(self, *args, **kwargs)
        sizes.append(len(out))
        return out

    monkeypatch.setattr(relations.Table, "execute", counted)
    bars, events, overlays, crowded = build._swimmer(a)
    assert crowded == f"{treated} patients: one line per patient is drawn for at most {cap}"
    assert bars.empty and events.empty and overlays == []
    for cr, plain in drawn.items():
        data, why = build._blasts(a)[cr]
        assert data.empty
        n = plain.patient_id.nunique()
        assert why == f"{n} patients: one line per patient is drawn for at most {cap}"
    # what came into Python: one row per patient at most (the patients the engine listed)
    assert sizes and max(sizes) <= len(a.patients)


# ---- per-patient figures in results.json ---------------------------------------------------------


def test_patients_named_by_figure_names():
    from amlcohort.report.results import patients_named

    names = ["patient.P03.age_at_first_dose_lower_bound", "patient.site.7.age_at_first_dose_lower_bound",
             "response.cr.n", "patient.count", "patients.P9.age"]
    assert patients_named(names) == {"P03", "site.7"}


def test_per_patient_figures_only_for_named_patients_in_a_large_cohort(monkeypatch):
    """Above PER_PATIENT_FIGURES_MAX patients only the patients a claims file names get a
    ``patient.<id>.*`` figure (a 10^6-patient registry's results.json held one per patient), and the
    note says so; up to it (inclusive) every patient gets one. Set to 13, then 12 here, so the 13
    embedded patients are at the cap, then "large"."""
    from amlcohort.report import results

    cohort = materialise(load_cohort())
    every = analyse(cohort)
    assert sum(n.startswith("patient.") for n in every.figures) == 13
    monkeypatch.setattr(results, "PER_PATIENT_FIGURES_MAX", 13)  # at the cap: still every patient
    at_cap = analyse(cohort, named_patients={"P03"})
    assert sum(n.startswith("patient.") for n in at_cap.figures) == 13
    assert "only for the patients" not in at_cap.notes["patient.<id>.age_at_first_dose_lower_bound"]
    monkeypatch.setattr(results, "PER_PATIENT_FIGURES_MAX", 12)
    few = analyse(cohort, named_patients={"P03", "P04", "P99"})  # P99: not in the cohort
    per = sorted(n for n in few.figures if n.startswith("patient."))
    assert per == ["patient.P03.age_at_first_dose_lower_bound", "patient.P04.age_at_first_dose_lower_bound"]
    for n in per:  # the same values as when every patient is listed
        assert few.figures[n] == every.figures[n]
    note = few.notes["patient.<id>.age_at_first_dose_lower_bound"]
    assert "only for the patients a claims file names (2 of 13)" in note and "more than 12 patients" in note
    none = analyse(cohort)
    assert not [n for n in none.figures if n.startswith("patient.")]
    assert "(0 of 13)" in none.notes["patient.<id>.age_at_first_dose_lower_bound"]


def test_report_keeps_the_claimed_patients_figures(monkeypatch):
    """The report reads the claims first and keeps the figures they name: the paper's claim about
    patients 3 and 4 ("aged more than 70") is still audited in a "large" cohort, with the same
    verdict (discrepant: the reconstructed patient 3 was 24.6 at the first dose, patient 4 70.1)."""
    from amlcohort.report import results

    monkeypatch.setattr(results, "PER_PATIENT_FIGURES_MAX", 12)
    built = build.assemble(load_cohort(), background=False)
    per = sorted(n for n in built.analysis.figures if n.startswith("patient."))
    assert per == ["patient.P03.age_at_first_dose_lower_bound", "patient.P04.age_at_first_dose_lower_bound"]
    verdict = next(v for v in built.verdicts if v.claim.name == "cr.patients_3_4.aged_over_70.n")
    assert verdict.status == "discrepant"
    assert verdict.computed == pytest.approx([24.6297, 70.1492], abs=1e-4)
