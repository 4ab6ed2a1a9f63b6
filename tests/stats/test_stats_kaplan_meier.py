"""Kaplan–Meier, quantiles, restricted mean and reverse-KM follow-up against R's survival package."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from amlcohort.stats import (
    KaplanMeierResult,
    counts_from_arrays,
    kaplan_meier,
    kaplan_meier_by_group,
    median_follow_up,
    restricted_mean,
)

SINGLE_CURVES = [
    *(f"km_{d}_{ct}" for d in ("aml", "lung", "half", "ties") for ct in ("log", "loglog", "plain")),
    "km_ovarian_log",
    "km_veteran_loglog",
    "km_end_at_half_log",
    "km_all_censored_log",
    "km_all_censored_loglog",
]
CURVE_COLUMNS = {
    "time": "time",
    "n_risk": "n_risk",
    "n_event": "n_event",
    "n_censor": "n_censor",
    "survival": "surv",
    "std_err": "std_err",
    "lower": "lower",
    "upper": "upper",
}


def check_curve(km: KaplanMeierResult, curve: dict, assert_r, label: str) -> None:
    assert len(km.table) == len(curve["time"]), label
    for ours, theirs in CURVE_COLUMNS.items():
        assert_r(km.table[ours].to_numpy(), curve[theirs], what=f"{label}: {ours}")


def check_median(km: KaplanMeierResult, table: dict, assert_r, label: str) -> None:
    lo, hi = km.median_ci_
    assert_r(km.median_, table["median"], what=f"{label}: median")
    assert_r(lo, table["lcl"], what=f"{label}: median LCL")
    assert_r(hi, table["ucl"], what=f"{label}: median UCL")
    assert km.n == table["records"]
    assert km.n_events == table["events"]


def check_quantiles(km: KaplanMeierResult, quantiles: dict, assert_r, label: str) -> None:
    for i, p in enumerate(quantiles["probs"]):
        q = km.quantile(p)
        assert_r(q.time, quantiles["quantile"][i], what=f"{label}: quantile {p}")
        assert_r(q.lower, quantiles["lower"][i], what=f"{label}: quantile {p} lower")
        assert_r(q.upper, quantiles["upper"][i], what=f"{label}: quantile {p} upper")
    frame = km.quantiles(quantiles["probs"])
    assert_r(frame["time"].to_numpy(), quantiles["quantile"], what=f"{label}: quantiles()")


@pytest.mark.parametrize("key", SINGLE_CURVES)
def test_single_curve_matches_survfit(key, r_expected, surv_arrays, assert_r):
    ref = r_expected[key]
    assert ref["call"].startswith("survfit(")
    time, event = surv_arrays(ref["data"])
    km = kaplan_meier(time, event, conf_type=ref["conf_type"], conf_level=ref["conf_level"])
    check_curve(km, ref["curve"], assert_r, ref["call"])
    check_median(km, ref["table"], assert_r, ref["call"])
    check_quantiles(km, ref["quantiles"], assert_r, ref["call"])


@pytest.mark.parametrize(
    ("key", "group_col"),
    [("km_aml_by_x_log", "x"), ("km_aml_by_x_plain", "x"), ("km_lung_by_sex_loglog", "sex")],
)
def test_curves_by_group_match_survfit_strata(key, group_col, r_expected, r_data, surv_arrays, assert_r):
    ref = r_expected[key]
    time, event = surv_arrays(ref["data"])
    group = r_data(ref["data"])[group_col].to_numpy()
    curves = kaplan_meier_by_group(time, event, group, conf_type=ref["conf_type"])
    assert [f"{group_col}={g}" for g in curves] == [g["stratum"] for g in ref["groups"]]
    for km, g in zip(curves.values(), ref["groups"], strict=True):
        check_curve(km, g["curve"], assert_r, f"{ref['call']} [{g['stratum']}]")
        check_median(km, g["table"], assert_r, f"{ref['call']} [{g['stratum']}]")
        check_quantiles(km, g["quantiles"], assert_r, f"{ref['call']} [{g['stratum']}]")


def test_default_conf_type_is_log_as_r(r_expected, surv_arrays, assert_r):
    # R's survfit default is conf.type="log": survfit(Surv(time, status) ~ 1, data=aml)
    ref = r_expected["km_aml_log"]
    time, event = surv_arrays("aml")
    km = kaplan_meier(time, event)
    assert km.conf_type == "log"
    assert_r(km.table["lower"].to_numpy(), ref["curve"]["lower"])


def test_median_is_midpoint_where_survival_is_exactly_half(r_expected, surv_arrays, assert_r):
    # S = 4/8 = 0.5 from t=330 until the death at t=358: R prints (330 + 358) / 2.
    time, event = surv_arrays("half")
    km = kaplan_meier(time, event, conf_type="log")
    assert km.median_ == 344.0
    assert km.quantile(0.5).time == 344.0
    assert_r(km.median_, r_expected["km_half_log"]["table"]["median"])


def test_curve_ending_at_half_print_vs_quantile_rules(r_expected, surv_arrays):
    # S = 0.5 from t=30 to the last (censored) time 60: print.survfit says 30, quantile.survfit 45.
    ref = r_expected["km_end_at_half_log"]
    time, event = surv_arrays("end_at_half")
    km = kaplan_meier(time, event, conf_type="log")
    assert km.median_ == ref["table"]["median"] == 30
    assert km.quantile(0.5).time == ref["quantiles"]["quantile"][1] == 45


def test_all_censored_has_no_median(r_expected, surv_arrays):
    time, event = surv_arrays("all_censored")
    km = kaplan_meier(time, event, conf_type="log")
    assert km.median_ is None
    assert km.median_ci_ == (None, None)
    assert km.quantile(0.25).time is None
    assert r_expected["km_all_censored_log"]["table"]["median"] is None
    assert (km.table["survival"] == 1.0).all()
    # log-log bounds are undefined where S = 1 (R gives NA)
    assert kaplan_meier(time, event, conf_type="log-log").table["lower"].isna().all()


def test_censoring_tied_with_event_counts_as_at_risk(r_expected, surv_arrays, assert_r):
    time, event = surv_arrays("ties")
    km = kaplan_meier(time, event, conf_type="log")
    first = km.table.iloc[0]
    # t=5: 4 events and 1 censoring among 18 subjects; the censored one is still at risk at t=5
    assert (first["time"], first["n_risk"], first["n_event"], first["n_censor"]) == (5.0, 18, 3, 1)
    assert first["survival"] == pytest.approx(15 / 18, rel=1e-12)
    second = km.table.iloc[1]
    assert (second["time"], second["n_risk"]) == (8.0, 14)
    assert_r(km.table["survival"].to_numpy(), r_expected["km_ties_log"]["curve"]["surv"])


@pytest.mark.parametrize("key", ["km_aml_at_times", "km_aml_at_times_loglog"])
def test_survival_at_times_matches_summary_times(key, r_expected, surv_arrays, assert_r):
    ref = r_expected[key]
    time, event = surv_arrays("aml")
    at = kaplan_meier(time, event, conf_type=ref["conf_type"]).survival_at(ref["time"])
    for ours, theirs in CURVE_COLUMNS.items():
        assert_r(at[ours].to_numpy(), ref[theirs], what=f"{ref['call']}: {ours}")


def test_survival_at_past_last_time_carries_forward(surv_arrays):
    time, event = surv_arrays("aml")
    km = kaplan_meier(time, event, conf_type="log")
    at = km.survival_at([170])
    assert at["n_risk"].iloc[0] == 0
    assert at["survival"].iloc[0] == km.table["survival"].iloc[-1]


@pytest.mark.parametrize("index", range(8))
def test_restricted_mean_matches_survmean(index, r_expected, surv_arrays, assert_r):
    ref = r_expected["rmean"][index]
    time, event = surv_arrays(ref["data"])
    result = restricted_mean(time, event, tau=ref["tau"])
    assert_r(result.estimate, ref["rmean"], what=ref["call"])
    assert_r(result.std_err, ref["se"], what=ref["call"])
    z = 1.959963984540054
    assert result.lower == pytest.approx(result.estimate - z * result.std_err, rel=1e-12)


def test_restricted_mean_by_group(r_expected, r_data, surv_arrays, assert_r):
    ref = r_expected["rmean_aml_by_x"]
    time, event = surv_arrays("aml")
    curves = kaplan_meier_by_group(time, event, r_data("aml")["x"].to_numpy())
    got = [km.restricted_mean(ref["tau"]) for km in curves.values()]
    assert_r([g.estimate for g in got], ref["rmean"], what=ref["call"])
    assert_r([g.std_err for g in got], ref["se"], what=ref["call"])


def test_aml_restricted_mean_value(surv_arrays):
    # R: summary(survfit(Surv(time, status) ~ 1, data=aml), rmean=100)$table prints rmean 31.31, se 5.786
    time, event = surv_arrays("aml")
    r = restricted_mean(time, event, tau=100)
    assert r.estimate == pytest.approx(31.312629, abs=1e-6)
    assert r.std_err == pytest.approx(5.786445, abs=1e-6)


@pytest.mark.parametrize("index", range(4))
def test_median_follow_up_reverse_km(index, r_expected, surv_arrays, assert_r):
    ref = r_expected["followup"][index]
    time, event = surv_arrays(ref["data"])
    fu = median_follow_up(time, event, conf_type=ref["conf_type"])
    assert_r(fu.median, ref["table"]["median"], what=ref["call"])
    assert_r(fu.lower, ref["table"]["lcl"], what=ref["call"])
    assert_r(fu.upper, ref["table"]["ucl"], what=ref["call"])
    assert fu.reverse_km.n_events == ref["table"]["events"]


def test_follow_up_from_counts_equals_arrays(surv_arrays):
    time, event = surv_arrays("lung")
    counts = counts_from_arrays(time, event)
    a = median_follow_up(time, event)
    b = median_follow_up.from_counts(counts)
    assert (a.median, a.lower, a.upper) == (b.median, b.lower, b.upper)
    assert "Median follow-up" in a.summary()


def test_from_counts_equals_arrays_and_accepts_duplicates(surv_arrays):
    time, event = surv_arrays("aml")
    counts = counts_from_arrays(time, event)
    km = kaplan_meier(time, event)
    split = pd.concat([counts.assign(n_event=0), counts.assign(n_censor=0)])  # duplicate times
    pd.testing.assert_frame_equal(kaplan_meier.from_counts(split).table, km.table)
    pd.testing.assert_frame_equal(KaplanMeierResult.from_counts(counts).table, km.table)


def test_summary_and_lifelines_style_accessors(surv_arrays):
    time, event = surv_arrays("aml")
    km = kaplan_meier(time, event, conf_type="log")
    text = km.summary()
    assert "median" in text and "27" in text and "0.95LCL" in text
    assert list(km.survival_function_.columns) == ["survival"]
    assert km.survival_function_.index.name == "time"
    assert list(km.confidence_interval_.columns) == ["lower", "upper"]
    assert list(km.table.columns) == [
        "time",
        "n_risk",
        "n_event",
        "n_censor",
        "survival",
        "std_err",
        "lower",
        "upper",
    ]


# --- input errors -------------------------------------------------------------------------------
def test_zero_length_input_is_not_estimable_not_an_error():
    km = kaplan_meier([], [])
    assert not km.estimable and "no subjects" in km.reason
    assert km.n == 0 and km.n_events == 0 and km.median_ is None and km.median_ci_ == (None, None)
    assert km.table.empty and list(km.table.columns)[:2] == ["time", "n_risk"]
    empty = pd.DataFrame({"time": [], "n_event": [], "n_censor": []})
    assert not kaplan_meier.from_counts(empty).estimable


def test_no_events_median_not_reached():
    km = kaplan_meier([3, 5, 8], [0, 0, 0])
    assert km.estimable and km.reason == ""
    assert km.median_ is None and km.table["survival"].tolist() == [1.0, 1.0, 1.0]


def test_mismatched_lengths_name_the_argument():
    with pytest.raises(ValueError, match=r"event has length 2 but time has length 3"):
        kaplan_meier([1, 2, 3], [1, 0])


def test_bad_event_codes_and_times_are_rejected():
    with pytest.raises(ValueError, match="event must be coded 0/1"):
        kaplan_meier([1, 2, 3], [1, 2, 0])
    with pytest.raises(ValueError, match="time contains negative"):
        kaplan_meier([-1, 2, 3], [1, 1, 0])
    with pytest.raises(ValueError, match="time contains missing"):
        kaplan_meier([np.nan, 2, 3], [1, 1, 0])


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="conf_type"):
        kaplan_meier([1, 2], [1, 1], conf_type="logit")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="conf_level"):
        kaplan_meier([1, 2], [1, 1], conf_level=95)
    with pytest.raises(ValueError, match="p must be strictly between 0 and 1"):
        kaplan_meier([1, 2], [1, 1]).quantile(1.5)


def test_counts_with_several_groups_need_by_group():
    counts = counts_from_arrays([1, 2, 3, 4], [1, 1, 0, 1], group=["a", "a", "b", "b"])
    with pytest.raises(ValueError, match="kaplan_meier_by_group"):
        kaplan_meier.from_counts(counts)
    curves = kaplan_meier_by_group.from_counts(counts)
    assert list(curves) == ["a", "b"]
    assert curves["b"].table["survival"].tolist() == [1.0, 0.0]


def test_restricted_mean_of_no_observations_says_so():
    with pytest.raises(ValueError, match="no observations"):
        restricted_mean([], [])
