"""The adherence audit on the embedded cohort: the deviations the data holds, and none that it does not."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from amlcohort import load_cohort
from amlcohort.protocol import audit, audit_section, audit_summary, recommendations
from amlcohort.protocol.audit import DEVIATION_COLUMNS
from tests.protocol.gaps import open_gaps


@pytest.fixture(scope="module")
def section(study) -> dict:
    return audit_section(study)


@pytest.fixture(scope="module")
def dev(section) -> pd.DataFrame:
    return section["deviations"]


@pytest.fixture(scope="module")
def gapped(tmp_path_factory) -> object:
    """The embedded bundle with records removed (see tests/protocol/gaps.py)."""
    import shutil

    from amlcohort.io.cohort import embedded_study_path

    dest = tmp_path_factory.mktemp("gaps") / "bundle"
    shutil.copytree(embedded_study_path(), dest, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return load_cohort(open_gaps(dest))


@pytest.fixture(scope="module")
def gapped_dev(gapped) -> pd.DataFrame:
    return audit_section(gapped)["deviations"]


def _rows(dev: pd.DataFrame, rule: str) -> set[tuple[str, dt.date]]:
    return {(r.patient_id, r.date) for r in dev[dev.rule_id == rule].itertuples()}


def test_columns_and_every_row_has_evidence(study, dev) -> None:
    assert list(audit(study).schema().names) == list(DEVIATION_COLUMNS)
    assert not dev.empty
    for col in ("patient_id", "date", "rule_id", "category", "expected", "evidence", "source"):
        assert dev[col].notna().all(), col
    assert (dev.evidence.str.len() > 10).all()


def test_p09_stopping_rule_fired_while_sorafenib_went_on(dev) -> None:
    s = dev[dev.rule_id == "stopping_rule"]
    assert list(s.patient_id) == ["P09"]  # P02, P08, P11, P12 stopped on the day; P05, P13 equal -> continue
    r = s.iloc[0]
    assert (r.date, r.study_day, r.days_late) == (dt.date(2015, 8, 24), 22, 13)
    assert "66%" in r.evidence and "60%" in r.evidence and "2015-09-06" in r.evidence
    assert r.source.startswith("Xu 2019 §2.1")


def test_embedded_cohort_follows_supportive_care_and_surveillance(dev) -> None:
    """The reconstruction gives every transfusion, G-CSF course and assessment the protocol asks for."""
    for rule in ("platelet_transfusion", "rbc_transfusion", "g_csf", "antifungal_prophylaxis"):
        assert _rows(dev, rule) == set(), rule
    assert not any(r.startswith("surveillance.") for r in dev.rule_id)
    assert set(dev.rule_id) == {
        "stopping_rule",
        "dose_modification.skin_not_reduced",
        "dose_modification.skin_continued",
    }


def test_platelet_threshold_without_transfusion(gapped_dev) -> None:
    # every P09 count from the first dose on is below 20 (the pre-treatment 08-01 count is not audited)
    assert _rows(gapped_dev, "platelet_transfusion") == {
        ("P09", dt.date(2015, 8, 3)),
        ("P09", dt.date(2015, 8, 10)),
        ("P09", dt.date(2015, 8, 17)),
        ("P09", dt.date(2015, 8, 24)),
        ("P09", dt.date(2015, 8, 31)),
    }
    # P12 at exactly 20 x10^9/L (2015-06-02) is not below the threshold
    assert ("P12", dt.date(2015, 6, 2)) not in _rows(gapped_dev, "platelet_transfusion")


def test_hemoglobin_at_or_below_6_was_transfused(dev) -> None:
    # P09 6.0 / 5.8 / 5.6, P07 6.0, P13 5.9: all with an RBC transfusion on the day; P13 6.1 needs none
    assert _rows(dev, "rbc_transfusion") == set()


def test_g_csf_missing_while_anc_below_1(gapped_dev) -> None:
    g = _rows(gapped_dev, "g_csf")
    assert {pid for pid, _ in g} == {"P09"}
    assert {("P09", dt.date(2015, 8, d)) for d in (3, 10, 17, 24, 31)} <= g
    assert _rows(gapped_dev, "antifungal_prophylaxis") == set()  # P09's antifungal course is kept


def test_missed_surveillance(gapped_dev) -> None:
    post = gapped_dev[gapped_dev.rule_id == "surveillance.counts.monthly_post_cr"]
    assert set(post.patient_id) == {"P06"}
    first = post[post.patient_id == "P06"].iloc[0]
    assert (first.date, first.days_late) == (dt.date(2017, 7, 1), 60)
    assert "2017-06-01" in first.evidence and "2017-08-30" in first.evidence
    assert _rows(gapped_dev, "surveillance.chemistry.every_other_week") == {
        ("P01", dt.date(2016, 8, 1)),
        ("P10", dt.date(2017, 11, 20)),
    }
    assert not any(r.startswith("surveillance.marrow") for r in gapped_dev.rule_id)


def test_skin_dose_modification_against_the_label(dev) -> None:
    assert _rows(dev, "dose_modification.skin_not_reduced") == {("P01", dt.date(2016, 6, 23))}
    assert _rows(dev, "dose_modification.skin_continued") == {("P10", dt.date(2017, 10, 6))}
    assert "P04" not in set(dev.patient_id[dev.category == "dose_modification"])  # the §3.3 hand-foot case
    assert dev[dev.category == "dose_modification"].source.str.contains("Nexavar").all()


def test_no_dose_deviation_in_the_embedded_cohort(dev) -> None:
    assert dev[dev.category == "dose"].empty


def test_dose_deviations_are_found(bundle_copy: Path) -> None:
    f = bundle_copy / "exposures.csv"
    text = f.read_text(encoding="utf-8")
    text = text.replace(
        "P02,cytarabine,induction,25,mg/m2,bid,sc,2016-12-12,2016-12-21",
        "P02,cytarabine,induction,50,mg,bid,sc,2016-12-12,2016-12-21",
    )  # BSA 1.58: 40 mg
    text = text.replace(
        "P03,cytarabine,induction,25,mg/m2,bid,sc,2017-06-19,2017-07-02",
        "P03,cytarabine,induction,38,mg,bid,sc,2017-06-19,2017-07-04",
    )  # right dose, 16 days
    text = text.replace("P05,sorafenib,induction,400,mg,bid", "P05,sorafenib,induction,600,mg,bid")
    f.write_text(text, encoding="utf-8")
    dev = audit(load_cohort(bundle_copy)).to_pandas()
    dose = dev[dev.category == "dose"]
    got = {(r.patient_id, r.rule_id) for r in dose.itertuples()}
    assert got == {
        ("P02", "dose.cytarabine_bsa"),
        ("P03", "dose.cytarabine_duration"),
        ("P05", "dose.sorafenib_level"),
    }
    ev = dose[dose.patient_id == "P02"].evidence.iloc[0]
    assert "recorded 50 mg" in ev and "BSA 1.58" in ev and "dose 40 mg" in ev


def test_summary_tables(study, section, dev) -> None:
    s = audit_summary(audit(study))
    by_rule = s.by_rule.to_pandas()
    assert by_rule.deviations.sum() == len(dev)
    assert dict(zip(by_rule.rule_id, by_rule.deviations, strict=True))["stopping_rule"] == 1
    by_patient = section["by_patient"]
    assert by_patient.deviations.sum() == len(dev)
    p09 = by_patient[by_patient.patient_id == "P09"].iloc[0]
    assert p09.rules == "stopping_rule"
    assert "P04" not in set(by_patient.patient_id)


def test_audit_section_for_the_report(section) -> None:
    assert {"title", "text", "deviations", "summary", "by_patient", "disclaimer"} <= set(section)
    assert all(isinstance(section[k], pd.DataFrame) for k in ("deviations", "summary", "by_patient"))
    assert "P09" in section["text"] and "not a medical device" in section["text"]
    assert "\n" not in section["text"].strip()


def test_threshold_deviations_agree_with_the_rules_on_that_date(gapped, gapped_dev) -> None:
    """The audit and the per-date recommendations run the same rule sets on the same data."""
    dev = gapped_dev
    for rule, topic in (("platelet_transfusion", "Platelet transfusion"), ("g_csf", "G-CSF")):
        r = dev[(dev.rule_id == rule) & (dev.patient_id == "P09")].iloc[0]
        recs = {x.topic: x for x in recommendations(gapped, "P09", r.date)}
        assert recs[topic].fires


def test_absent_tables_are_not_audited_as_missing_care(bundle_copy: Path) -> None:
    """Without transfusions.csv and supportive_care.csv nothing is known about them: no deviations
    are invented (the embedded bundle with those tables removed)."""
    (bundle_copy / "transfusions.csv").unlink()
    (bundle_copy / "supportive_care.csv").unlink()
    dev = audit(load_cohort(bundle_copy)).to_pandas()
    assert not dev.rule_id.isin(
        ["rbc_transfusion", "platelet_transfusion", "g_csf", "antifungal_prophylaxis"]
    ).any()
    assert "stopping_rule" in set(dev.rule_id)
