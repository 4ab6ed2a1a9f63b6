# ruff: noqa: SIM300  (upper-case ADaM column names read as constants to the Yoda rule)
"""ADaM datasets of the embedded cohort, checked value by value against the cohort's own derivations,
the published Table 1, and Kaplan-Meier / log-rank recomputed from ADTTE alone."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from amlcohort.criteria import response as resp
from amlcohort.criteria.ctcae import grade_assessments
from amlcohort.endpoints.analysis import analysis_table
from amlcohort.interop.adam import AdamBuilder, study_id
from amlcohort.interop.export import write_adam
from amlcohort.interop.spec import DATASETS, DATASETS_BY_NAME, check_spec
from amlcohort.stats import (
    event_counts,
    kaplan_meier_by_group,
    kaplan_meier_by_group_from_counts,
    logrank_test,
    logrank_test_from_counts,
)

pyreadstat = pytest.importorskip("pyreadstat")


@pytest.fixture(scope="module")
def written(study, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("adam")
    write_adam(study, out)
    return out


@pytest.fixture(scope="module")
def ds(written) -> dict[str, pd.DataFrame]:
    return {d.name: pq.read_table(written / f"{d.name.lower()}.parquet").to_pandas() for d in DATASETS}


@pytest.fixture(scope="module")
def analysis(study) -> pd.DataFrame:
    return analysis_table(study, "study").execute()


def test_specification_meets_sas_v5_limits():
    assert check_spec() == []


def test_study_id_is_a_sas_identifier():
    assert study_id("Sorafenib +/- LDAC (Xu et al. 2019)") == "SORAFENIB_LDAC_XU_ET_AL_2019"
    assert study_id("2019 cohort") == "S2019_COHORT"
    assert study_id("x" * 40) == "X" * 32
    assert study_id("***") == "STUDY"


def test_adsl_counts_equal_table_1(ds):
    adsl = ds["ADSL"]
    assert len(adsl) == 13 and adsl.USUBJID.is_unique
    assert (adsl.SEX == "F").sum() == 6  # Table 1 lists six women (the text's "seven" is the paper's slip)
    assert adsl.ARMCD.value_counts().to_dict() == {"sorafenib_alone": 8, "sorafenib_ldac": 5}
    assert set(adsl.SAFFL) == {"Y"} and set(adsl.ITTFL) == {"Y"}
    assert (adsl.TRT01P == adsl.ARM).all()
    # ARM is the study definition's label of ARMCD (study.yaml), not the code
    assert dict(zip(adsl.ARMCD, adsl.ARM, strict=True)) == {
        "sorafenib_ldac": "Sorafenib + LDAC",
        "sorafenib_alone": "Sorafenib alone",
    }


def test_adsl_dates_equal_the_cohort(study, ds, analysis):
    adsl = ds["ADSL"].set_index("SUBJID")
    p = study.table("patients").execute().set_index("patient_id")
    assert (adsl.AGE == p.age_at_onset.reindex(adsl.index)).all()
    first = study.first_dose().execute().set_index("patient_id").first_dose
    assert (adsl.TRTSDT == first.reindex(adsl.index).dt.date).all()
    os_ = analysis[analysis.paramcd == "OS"].set_index("patient_id")
    dead = os_.cnsr == 0
    assert (adsl.DTHFL.eq("Y") == dead.reindex(adsl.index)).all()
    assert (adsl.loc[dead[dead].index, "DTHDT"] == os_.adt[dead].dt.date).all()
    assert (adsl.TRTDURD == [(e - s).days + 1 for s, e in zip(adsl.TRTSDT, adsl.TRTEDT, strict=True)]).all()


def test_adtte_os_equals_the_analysis_table_per_subject(ds, analysis):
    adtte = ds["ADTTE"]
    for code, ours in (("OS", "OS"), ("EFS", "EFS"), ("CRDUR", "RFS"), ("DAYSCR", "TTCR")):
        a = analysis[analysis.paramcd == code].set_index("patient_id").sort_index()
        t = adtte[adtte.PARAMCD == ours].set_index("SUBJID").sort_index()
        assert list(t.index) == list(a.index), code
        assert (t.AVAL.to_numpy() == a.aval.to_numpy()).all(), code
        assert (t.CNSR.to_numpy() == a.cnsr.to_numpy()).all(), code
        assert ((t.ADT - t.STARTDT).map(lambda d: d.days).to_numpy() == t.AVAL.to_numpy()).all()
    os_ = adtte[adtte.PARAMCD == "OS"]
    assert len(os_) == 13 and set(os_.CNSR) <= {0.0, 1.0}
    assert (os_.EVNTDESC[os_.CNSR == 0] == "death").all()


def _km_from_cohort(study, code: str, by: str):
    """What the report computes: counts aggregated by the engine from the analysis table."""
    t = analysis_table(study, "study")
    best = t.filter(t.paramcd == "BESTRESP").select("patient_id", cr=t.avalc == "cr")
    arms = study.table("patients").select("patient_id", "study_arm")
    x = t.filter(t.paramcd == code).join(best, "patient_id").join(arms, "patient_id")
    x = x.mutate(event=(1 - x.cnsr).cast("int64"), group=x.cr if by == "cr" else x.study_arm)
    counts = event_counts(x, "aval", "event", group="group")
    return kaplan_meier_by_group_from_counts(counts, conf_type="log"), logrank_test_from_counts(counts)


@pytest.mark.parametrize(("code", "by"), [("OS", "cr"), ("EFS", "cr"), ("OS", "arm")])
def test_km_and_logrank_from_adtte_alone_equal_the_cohort(study, written, code, by):
    adtte = pq.read_table(written / "adtte.parquet").to_pandas()
    t = adtte[adtte.PARAMCD == code]
    group = (t.CRFL == "Y") if by == "cr" else t.ARMCD
    ours = kaplan_meier_by_group(t.AVAL, 1 - t.CNSR, group, conf_type="log")
    lr = logrank_test(t.AVAL, 1 - t.CNSR, group)
    ref, ref_lr = _km_from_cohort(study, code, by)
    assert {k: v.median_ for k, v in ours.items()} == {k: v.median_ for k, v in ref.items()}
    assert lr.p_value == pytest.approx(ref_lr.p_value, rel=1e-12)
    assert lr.statistic == pytest.approx(ref_lr.statistic, rel=1e-12)
    if (code, by) == ("OS", "cr"):  # the paper: median survival 520 (CR) vs 344 days
        assert ours[True].median_ == 520 and ours[False].median_ == 344


def test_adrs_bor_equals_best_response(study, ds):
    adrs = ds["ADRS"]
    bor = adrs[adrs.PARAMCD == "BOR"].set_index("SUBJID").sort_index()
    ref = resp.best_response(resp.derive(study, "study")).execute().set_index("patient_id").sort_index()
    assert list(bor.index) == list(ref.index)
    codes = {"CR": "cr", "CRi": "cri", "PR": "pr", "NR": "nr", "NE": "not_evaluable", "RELAPSE": "relapse"}
    assert [codes[x] for x in bor.AVALC] == list(ref.best_response)
    cr = bor[bor.AVALC == "CR"].ARMCD.value_counts().to_dict()
    assert cr == {"sorafenib_ldac": 4, "sorafenib_alone": 1}  # the paper: CR 4/5 vs 1/8
    assert set(bor.PARCAT1) == {"STUDY"} and (bor.AVAL[bor.AVALC == "CR"] == 1).all()


def test_adrs_ovr_one_record_per_assessment_and_no_day_0(study, ds):
    adrs = ds["ADRS"]
    ovr = adrs[adrs.PARAMCD == "OVR"]
    ref = resp.derive(study, "study").execute()
    assert len(ovr) == len(ref)
    assert (ovr.ADY != 0).all() and (ovr.ADY >= 2).all()  # response assessments are after day 1
    adsl = ds["ADSL"].set_index("USUBJID")
    trtsdt = ovr.USUBJID.map(adsl.TRTSDT)
    assert ((ovr.ADT - trtsdt).map(lambda d: d.days) + 1 == ovr.ADY).all()
    assert set(ovr.AVALC) <= {"CR", "CRh", "CRi", "MLFS", "PR", "SD", "NR", "PD", "RELAPSE", "NE"}
    assert (ovr.ANL01FL.eq("Y") == ovr.AVALC.ne("NE")).all()


def test_adae_records_and_treatment_emergence(study, ds):
    adae = ds["ADAE"]
    ae = study.table("adverse_events").execute()
    assert len(adae) == len(ae)
    assert adae.groupby("USUBJID").AESEQ.apply(lambda s: sorted(s) == list(range(1, len(s) + 1))).all()
    emergent = (adae.ASTDT >= adae.TRTSDT) & (adae.ASTDT <= adae.TRTEDT + dt.timedelta(days=30))
    assert (adae.TRTEMFL.eq("Y") == emergent).all()
    assert (adae.ATOXGR == adae.AETOXGR).all() and set(adae.ATOXGR) <= {"1", "2", "3", "4", "5"}
    assert set(adae.AEOUT.dropna()) <= {
        "RECOVERED/RESOLVED",
        "RECOVERING/RESOLVING",
        "NOT RECOVERED/NOT RESOLVED",
        "RECOVERED/RESOLVED WITH SEQUELAE",
        "FATAL",
        "UNKNOWN",
    }
    assert (adae.ASTDY != 0).all()


def test_adlb_grades_equal_ctcae_grading(study, ds):
    adlb = ds["ADLB"]
    g = grade_assessments(study.table("assessments"), version="4.03").execute()
    neut = g[g.term_key == "neutrophil_count_decreased"][["patient_id", "assessment_date", "grade"]]
    neut = neut.assign(assessment_date=pd.to_datetime(neut.assessment_date))
    ours = adlb[adlb.PARAMCD == "NEUT"]
    ours = ours.assign(ADT=pd.to_datetime(ours.ADT))
    joined = ours.merge(
        neut.rename(columns={"grade": "ref"}),
        left_on=["SUBJID", "ADT"],
        right_on=["patient_id", "assessment_date"],
        how="inner",
    )
    assert len(joined) == len(ours) > 0
    assert (joined.ATOXGRL.astype(float).fillna(-1) == joined.ref.astype(float).fillna(-1)).all()
    assert joined.ref.notna().any()
    graded_low = joined.ATOXGRL.astype(float) > 0
    assert (joined.ATOXGR[graded_low] == "-" + joined.ATOXGRL[graded_low]).all()
    assert (ours.ATOXDSCL == "Neutrophil count decreased").all() and ours.ATOXDSCH.isna().all()


def test_adlb_baseline_flags(ds):
    adlb = ds["ADLB"]
    assert (adlb.ADY != 0).all()
    bl = adlb[adlb.ABLFL == "Y"]
    assert not bl.duplicated(["USUBJID", "PARAMCD"]).any()
    assert (bl.ADY <= 1).all()
    merged = adlb.merge(
        bl[["USUBJID", "PARAMCD", "AVAL", "ATOXGR"]], on=["USUBJID", "PARAMCD"], suffixes=("", "_bl")
    )
    assert (merged.BASE == merged.AVAL_bl).all()
    assert (merged.BTOXGR.fillna("") == merged.ATOXGR_bl.fillna("")).all()
    assert {"NEUT", "PLAT", "HGB", "WBC", "ALT", "BMBLAST"} <= set(adlb.PARAMCD)


def test_xpt_reads_back_with_labels_types_and_dates(written, ds):
    for spec in DATASETS:
        df, meta = pyreadstat.read_xport(str(written / f"{spec.name.lower()}.xpt"))
        assert meta.table_name == spec.name and meta.file_label == spec.label
        assert meta.column_names == list(spec.names)
        assert meta.column_names_to_labels == {v.name: v.label for v in spec.variables}
        for v in spec.variables:
            kind = meta.readstat_variable_types[v.name]
            assert kind == ("string" if v.type == "Char" else "double"), (spec.name, v.name)
            if v.type == "Date":
                # the format DATE9. as the reader spells it ("DATE9" to pyreadstat 1.3.7, "DATE9." from 1.3.8)
                assert meta.original_variable_types[v.name] in ("DATE9", "DATE9.")
        assert len(df) == len(ds[spec.name])
    adtte, _ = pyreadstat.read_xport(str(written / "adtte.xpt"))
    ref = ds["ADTTE"]
    assert list(adtte.AVAL) == list(ref.AVAL) and list(adtte.CNSR) == list(ref.CNSR)
    assert list(adtte.ADT) == list(ref.ADT)  # SAS dates come back as the same calendar dates


def test_define_metadata_lists_every_variable(written, ds):
    variables = pd.read_csv(written / "define_variables.csv")
    datasets = pd.read_csv(written / "define_datasets.csv")
    assert list(datasets.dataset) == [d.name for d in DATASETS]
    assert dict(zip(datasets.dataset, datasets.records, strict=True)) == {k: len(v) for k, v in ds.items()}
    for spec in DATASETS:
        v = variables[variables.dataset == spec.name]
        assert list(v.variable) == list(spec.names)
        assert v.derivation.notna().all() and v.label.notna().all()
    usubjid = variables[(variables.dataset == "ADSL") & (variables.variable == "USUBJID")].iloc[0]
    assert usubjid.length == ds["ADSL"].USUBJID.str.len().max() and usubjid.type == "Char"
    assert DATASETS_BY_NAME["ADSL"].var("TRTSDT").sas_format == "DATE9."


def test_builder_runs_other_criteria(study):
    b = AdamBuilder(study, "eln2022")
    adrs = b.adrs().execute()
    assert set(adrs.PARCAT1) == {"ELN2022"}
    assert set(adrs.AVALC) <= {"CR", "CRh", "CRi", "MLFS", "PR", "NR", "RELAPSE", "NE"}


def test_trtemfl_window_boundaries_on_both_sides(bundle_copy):
    """P01: TRTSDT 2016-05-23, TRTEDT 2016-11-07 -> emergent from 05-23 to 12-07 (TRTEDT + 30)."""
    from amlcohort import load_cohort

    onsets = {
        "Fatigue": "2016-05-22",
        "Nausea": "2016-05-23",
        "Headache": "2016-12-07",
        "Cough": "2016-12-08",
    }
    with (bundle_copy / "adverse_events.csv").open("a", encoding="utf-8") as f:
        for term, onset in onsets.items():
            f.write(f"P01,{term},{onset},,,1,4.0,none,not_applicable,recovered,\n")
    adae = AdamBuilder(load_cohort(bundle_copy)).adae().execute()
    adae = adae[adae.SUBJID == "P01"].set_index("AETERM")
    flags = adae.TRTEMFL.reindex(list(onsets)).fillna("").to_dict()
    assert flags == {"Fatigue": "", "Nausea": "Y", "Headache": "Y", "Cough": ""}
    assert adae.loc["Fatigue", "ASTDY"] == -1 and adae.loc["Nausea", "ASTDY"] == 1


def test_cli_export_adam(tmp_path):
    from typer.testing import CliRunner

    from amlcohort.cli import app

    res = CliRunner().invoke(app, ["export", str(tmp_path), "--format", "adam"])
    assert res.exit_code == 0, res.output
    assert {p.name for p in tmp_path.glob("*.xpt")} == {f"{d.name.lower()}.xpt" for d in DATASETS}
    assert (tmp_path / "define.json").exists()
