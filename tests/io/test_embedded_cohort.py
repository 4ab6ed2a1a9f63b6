"""The embedded study cohort reproduces what the paper publishes (Xu et al. 2019).

Every aggregate is computed from the loaded bundle with Ibis on DuckDB and compared with the
number the paper states (section given in each test). Table 1 is compared cell by cell.
"""

from __future__ import annotations

import datetime as dt
import statistics

import ibis
from tests.conftest import rows

# Table 1 as published: sex, onset age, risk group, regimens in order, relapse intervals (months).
TABLE_1 = {
    "P01": ("female", 49, "adverse", 2, []),
    "P02": ("female", 52, "adverse", 1, []),
    "P03": ("female", 24, "favorable", 2, [3]),
    "P04": ("male", 68, "adverse", 4, [12]),
    "P05": ("male", 72, "favorable", 2, []),
    "P06": ("female", 28, "intermediate", 2, []),
    "P07": ("female", 20, "intermediate", 5, [13, 3]),
    "P08": ("female", 39, "intermediate", 4, [18]),
    "P09": ("male", 56, "intermediate", 9, []),
    "P10": ("male", 19, "intermediate", 4, [2, 3]),
    "P11": ("male", 68, "adverse", 0, []),
    "P12": ("male", 82, "adverse", 0, []),
    "P13": ("male", 64, "adverse", 0, []),
}


def elapsed(date_col, first_col):
    return date_col.delta(first_col, unit="day")


def with_first_dose(study, name):
    t = study.table(name)
    return t.join(study.first_dose(), "patient_id")


def cr_patients(study):
    ev = study.table("events")
    return ev.filter(ev.event_type == "cr_reported")


def test_table1_patients_as_published(study):
    p = study.table("patients").order_by("patient_id")
    got = {r["patient_id"]: (r["sex"], r["age_at_onset"], r["risk_group_reported"]) for r in rows(p)}
    assert got == {pid: v[:3] for pid, v in TABLE_1.items()}


def test_table1_prior_lines_and_relapse_intervals(study):
    pt = study.table("prior_therapies")
    lines = {r["patient_id"]: r["n"] for r in rows(pt.group_by("patient_id").aggregate(n=pt.count()))}
    assert {pid: lines.get(pid, 0) for pid in TABLE_1} == {pid: v[3] for pid, v in TABLE_1.items()}
    rel = pt.filter(pt.relapsed).order_by(["patient_id", "line"])
    intervals: dict[str, list[int]] = {}
    for r in rows(rel):
        intervals.setdefault(r["patient_id"], []).append(int(r["relapse_interval_months"]))
    assert {pid: intervals.get(pid, []) for pid in TABLE_1} == {pid: v[4] for pid, v in TABLE_1.items()}


def test_table1_regimen_text_kept_verbatim(study):
    pt = study.table("prior_therapies")
    r = rows(pt.filter((pt.patient_id == "P09") & (pt.line == 8)))[0]
    assert r["regimen"] == "HLA identical stem-cell transplantation"
    assert r["hsct_donor"] == "hla_identical"
    r7 = rows(pt.filter((pt.patient_id == "P07") & (pt.therapy_type == "hsct")))[0]
    assert r7["hsct_donor"] == "haploidentical"


def test_treatment_window_may_2015_to_december_2018(study):
    """Section 2.1: treated from May 2015 to December 2018."""
    f = study.first_dose()
    r = rows(f.aggregate(lo=f.first_dose.min(), hi=f.first_dose.max(), n=f.count()))[0]
    assert r["n"] == 13
    assert dt.date(2015, 5, 1) <= r["lo"] < dt.date(2015, 6, 1)
    assert dt.date(2015, 5, 1) <= r["hi"] <= dt.date(2018, 12, 31)


def test_all_flt3_itd_negative(study):
    """Section 3.1: all patients FLT3-ITD negative."""
    m = study.table("mutations")
    itd = m.filter(m.gene == "FLT3-ITD")
    assert rows(itd.aggregate(n=itd.count(), neg=(itd.result == "wild_type").sum()))[0] == {
        "n": 13,
        "neg": 13,
    }


def test_arms_five_combination_eight_alone(study):
    """Abstract: 5 sorafenib + LDAC, 8 sorafenib alone."""
    p = study.table("patients")
    got = {r["study_arm"]: r["n"] for r in rows(p.group_by("study_arm").aggregate(n=p.count()))}
    assert got == {"sorafenib_ldac": 5, "sorafenib_alone": 8}


def test_ldac_dose_route_and_10_to_14_days(study):
    """Section 2.1: cytarabine 25 mg/m2 SC twice daily for 10-14 days, combination arm only."""
    ex = study.table("exposures")
    ara = ex.filter(ex.drug == "cytarabine")
    ara = ara.join(study.table("patients"), "patient_id")
    got = rows(
        ara.select(
            "patient_id",
            "study_arm",
            "dose",
            "dose_unit",
            "route",
            "frequency",
            days=ara.end_date.delta(ara.start_date, unit="day") + 1,
        )
    )
    assert len(got) == 5
    for r in got:
        assert (r["study_arm"], r["dose"], r["dose_unit"], r["route"], r["frequency"]) == (
            "sorafenib_ldac",
            25,
            "mg/m2",
            "sc",
            "bid",
        )
        assert 10 <= r["days"] <= 14


def test_sorafenib_starts_at_400_mg_twice_daily(study):
    ex = study.table("exposures")
    first = ex.filter(ex.drug == "sorafenib").join(study.first_dose(), "patient_id")
    first = first.filter(first.start_date == first.first_dose)
    got = rows(first.aggregate(n=first.count(), ok=((first.dose == 400) & (first.frequency == "bid")).sum()))
    assert got == [{"n": 13, "ok": 13}]


def test_complete_remissions_four_of_five_and_one_of_eight(study):
    """Abstract / 3.2: 4/5 with LDAC, 1/8 alone; patients 3 and 4 among them; none of 11-13."""
    p = study.table("patients")
    crs = cr_patients(study).select("patient_id").distinct()
    j = p.left_join(crs.mutate(cr=ibis.literal(True)), "patient_id")
    got = {
        r["study_arm"]: (r["cr"], r["n"])
        for r in rows(j.group_by("study_arm").aggregate(cr=j.cr.fill_null(False).sum(), n=j.count()))
    }
    assert got == {"sorafenib_ldac": (4, 5), "sorafenib_alone": (1, 8)}
    ids = {r["patient_id"] for r in rows(crs)}
    assert {"P03", "P04"} <= ids
    assert not ids & {"P11", "P12", "P13"}


def test_days_to_cr_31_to_100_median_57(study):
    """Abstract: 31 to 100 days; 3.2: median 57 days."""
    cr = cr_patients(study).join(study.first_dose(), "patient_id")
    days = sorted(r["d"] for r in rows(cr.select(d=elapsed(cr.event_date, cr.first_dose))))
    assert (days[0], days[-1], len(days)) == (31, 100, 5)
    assert rows(cr.aggregate(m=elapsed(cr.event_date, cr.first_dose).median()))[0]["m"] == 57
    assert statistics.median(days) == 57


def test_every_cr_patient_under_10_pct_blasts_within_6_weeks(study):
    """3.2: all CR patients below 10 % marrow blasts in 6 weeks (Figure 1)."""
    a = with_first_dose(study, "assessments")
    a = a.filter(a.marrow_blasts_pct.notnull() & (elapsed(a.assessment_date, a.first_dose).between(0, 42)))
    low = a.group_by("patient_id").aggregate(lowest=a.marrow_blasts_pct.min())
    crs = cr_patients(study).select("patient_id")
    j = crs.join(low, "patient_id")
    got = rows(j.aggregate(n=j.count(), under=(j.lowest < 10).sum()))
    assert got == [{"n": 5, "under": 5}]


def test_non_cr_blast_patterns_4_fall_2_unchanged_2_rising(study):
    """3.2: of the 8 without CR, 4 fell in week 1 without sustaining, 2 unchanged, 2 rose."""
    from amlcohort.endpoints.blast_patterns import blast_patterns

    pat = blast_patterns(study)
    no_cr = pat.anti_join(cr_patients(study), "patient_id")
    got = {r["pattern"]: r["n"] for r in rows(no_cr.group_by("pattern").aggregate(n=no_cr.count()))}
    assert got == {"transient_fall": 4, "unchanged": 2, "rising": 2}
    unfit = pat.filter(pat.patient_id.isin(["P11", "P12", "P13"]))
    assert rows(unfit.aggregate(n=(unfit.pattern == "transient_fall").sum()))[0]["n"] == 1  # Discussion


def test_adverse_events_of_section_3_3(study):
    ae = with_first_dose(study, "adverse_events").join(study.table("patients"), "patient_id")
    ae = ae.mutate(on=elapsed(ae.onset_date, ae.first_dose))
    alt = rows(ae.filter(ae.term == "Alanine aminotransferase increased"))
    assert [(r["grade"], r["sex"], r["on"] <= 7) for r in alt] == [(1, "female", True)]
    ppe = rows(ae.filter(ae.term == "Palmar-plantar erythrodysesthesia syndrome").order_by("onset_date"))
    assert len({r["patient_id"] for r in ppe}) == 1 and ppe[0]["sex"] == "male"
    first, again = ppe
    assert (first["on"], first["grade"], first["action_taken"], first["action_drug"]) == (
        54,
        3,
        "interrupted",
        "sorafenib",
    )
    assert (first["worst_grade_date"] - first["onset_date"]).days <= 7
    assert (first["resolution_date"] - first["worst_grade_date"]).days <= 7
    assert (again["action_taken"], again["action_drug"]) == ("withdrawn", "sorafenib")
    ex = study.table("exposures")
    restart = rows(
        ex.filter(
            (ex.patient_id == first["patient_id"])
            & (ex.drug == "sorafenib")
            & (ex.start_date > first["worst_grade_date"])
        )
    )
    assert [r["dose"] for r in restart] == [200]  # half the planned 400 mg
    assert restart[0]["start_date"] <= again["onset_date"]
    # Grade 3 non-hematologic AEs: only this one (Abstract), and in maintenance (after CR).
    g3 = ae.filter((ae.grade >= 3) & (ae.term != "Neutrophil count decreased"))
    assert rows(g3.aggregate(n=g3.count()))[0]["n"] == 1
    cr = rows(cr_patients(study).filter(lambda t: t.patient_id == first["patient_id"]))[0]
    assert cr["event_date"] < first["onset_date"]
    skin = ae.filter(ae.term == "Rash maculo-papular")
    other = rows(skin.select("patient_id", "action_taken", "action_drug"))
    assert len({r["patient_id"] for r in other} - {first["patient_id"]}) == 2
    assert {(r["action_taken"], r["action_drug"]) for r in other} == {
        ("dose_reduced", "sorafenib"),
        ("interrupted", "sorafenib"),
    }


def test_neutropenia_over_7_days_in_every_cr_patient(study):
    """3.3: every CR patient had neutropenia (ANC < 1.0 x10^9/L) of more than 7 days in induction."""
    from amlcohort.endpoints.neutropenia import first_neutropenia

    n = first_neutropenia(study)
    crs = cr_patients(study).select("patient_id")
    got = rows(crs.join(n, "patient_id").select("patient_id", "days", "recovered"))
    assert len(got) == 5
    assert all(r["days"] > 7 and r["recovered"] is not None for r in got)


def test_follow_up_of_the_five_cr_patients(study):
    """3.4: HSCT 3 months after CR; stop at day 69 / after 12 months in CR, death 2 and 9 months
    later; relapses on maintenance at months 11 and 3, then death."""
    ev = study.table("events")
    first = study.first_dose()
    cr = cr_patients(study).select("patient_id", cr=cr_patients(study).event_date)
    ex = study.table("exposures")
    last = (
        ex.filter(ex.drug == "sorafenib")
        .group_by("patient_id")
        .aggregate(stop=ex.end_date.max(), why=ex.end_reason.argmax(ex.end_date))
    )
    j = cr.join(first, "patient_id").join(last, "patient_id")
    for etype in ("hsct", "relapse", "death", "last_contact"):
        e = ev.filter(ev.event_type == etype).select("patient_id", **{etype: ev.event_date})
        j = j.left_join(e, "patient_id").drop("patient_id_right")
    by = {r["patient_id"]: r for r in rows(j)}
    months = lambda a, b: (a - b).days / 30.44  # noqa: E731

    hsct = [r for r in by.values() if r["hsct"]]
    assert len(hsct) == 1 and 2.5 <= months(hsct[0]["hsct"], hsct[0]["cr"]) <= 3.5
    assert hsct[0]["death"] is None and hsct[0]["relapse"] is None
    assert months(hsct[0]["last_contact"], hsct[0]["hsct"]) / 12 >= 2.5  # "almost 3 years"

    tox = [r for r in by.values() if r["why"] == "toxicity"]
    assert len(tox) == 1 and (tox[0]["stop"] - tox[0]["first_dose"]).days == 69
    assert round(months(tox[0]["death"], tox[0]["stop"])) == 2
    kept = [r for r in by.values() if r["why"] == "patient_decision"]
    assert len(kept) == 1 and round(months(kept[0]["stop"], kept[0]["cr"])) == 12
    assert round(months(kept[0]["death"], kept[0]["stop"])) == 9

    relapsed = sorted(round(months(r["relapse"], r["cr"])) for r in by.values() if r["why"] == "relapse")
    assert relapsed == [3, 11]
    assert all(by[p]["death"] for p in by if by[p]["why"] == "relapse")


def os_times(study):
    """Overall survival from the first sorafenib dose, by CR status (elapsed days, 1 = death)."""
    ev = study.table("events")
    death = ev.filter(ev.event_type == "death").select("patient_id", death=ev.event_date)
    contact = ev.filter(ev.event_type == "last_contact").select("patient_id", contact=ev.event_date)
    crs = cr_patients(study).select("patient_id").mutate(cr=ibis.literal(True))
    j = study.first_dose().left_join(death, "patient_id").drop("patient_id_right")
    j = j.left_join(contact, "patient_id").drop("patient_id_right")
    j = j.left_join(crs, "patient_id").drop("patient_id_right")
    end = j.death.fill_null(j.contact)
    return rows(
        j.select(
            "patient_id",
            time=end.delta(j.first_dose, unit="day"),
            event=j.death.notnull().cast("int8"),
            cr=j.cr.fill_null(False),
        )
    )


def test_overall_survival_medians_520_and_344_days(study):
    """Abstract / 3.4: median OS 520 days with CR, 344 without (R's survfit median rule)."""
    from amlcohort.stats import kaplan_meier

    data = os_times(study)
    for cr, expected in ((True, 520), (False, 344)):
        g = [r for r in data if r["cr"] is cr]
        km = kaplan_meier([r["time"] for r in g], [r["event"] for r in g], conf_type="log")
        assert km.median_ == expected


def test_os_difference_not_significant_and_follow_up_over_11_months(study):
    """Abstract: no significant OS difference by CR; 3.4: median follow-up more than 11 months."""
    from amlcohort.stats import logrank_test, median_follow_up

    data = os_times(study)
    t, e, g = ([r[k] for r in data] for k in ("time", "event", "cr"))
    assert logrank_test(t, e, g).p_value > 0.05
    assert median_follow_up(t, e).median > 11 * 30.44
    assert statistics.median(t) > 11 * 30.44
