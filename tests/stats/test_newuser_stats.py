"""Defects a new user met: the default interval type differed from R's, and a restricted mean's
interval left [0, tau]."""

from __future__ import annotations

import inspect
import math

import pytest

from amlcohort.stats import (
    KaplanMeierResult,
    counts_from_arrays,
    kaplan_meier,
    kaplan_meier_by_group,
    kaplan_meier_by_group_from_counts,
    kaplan_meier_from_counts,
    median_follow_up,
    median_follow_up_from_counts,
    restricted_mean,
)

Z975 = 1.959963984540054  # qnorm(0.975)


# --- 1. the default conf_type is R's survfit default, "log" --------------------------------------
def test_every_entry_point_defaults_to_r_log_intervals(r_expected, surv_arrays, assert_r):
    # R: survfit(Surv(time, status) ~ 1, data=aml)  -- conf.type defaults to "log"
    ref = r_expected["km_aml_log"]
    assert ref["conf_type"] == "log"
    time, event = surv_arrays("aml")
    counts = counts_from_arrays(time, event)
    fits = {
        "kaplan_meier": kaplan_meier(time, event),
        "kaplan_meier_from_counts": kaplan_meier_from_counts(counts),
        "kaplan_meier.from_counts": kaplan_meier.from_counts(counts),
        "KaplanMeierResult.from_counts": KaplanMeierResult.from_counts(counts),
        "KaplanMeierResult.from_arrays": KaplanMeierResult.from_arrays(
            counts.time.to_numpy(), counts.n_event.to_numpy(), counts.n_censor.to_numpy()
        ),
    }
    for name, km in fits.items():
        assert km.conf_type == "log", name
        assert_r(km.table["lower"].to_numpy(), ref["curve"]["lower"], what=f"{name}: lower")
        assert_r(km.table["upper"].to_numpy(), ref["curve"]["upper"], what=f"{name}: upper")
        # print(survfit(Surv(time, status) ~ 1, data=aml)): median 27, 0.95LCL 18, 0.95UCL 45
        assert km.median_ci_ == (18.0, 45.0), name
    # with log-log the median's interval differs from R's default print: the old default was wrong
    assert kaplan_meier(time, event, conf_type="log-log").median_ci_ != (18.0, 45.0)


def test_by_group_defaults_to_r_log_intervals(r_expected, r_data, surv_arrays, assert_r):
    # R: survfit(Surv(time, status) ~ x, data=aml)  -- conf.type="log" by default
    ref = r_expected["km_aml_by_x_log"]
    time, event = surv_arrays("aml")
    group = r_data("aml")["x"].to_numpy()
    for curves in (
        kaplan_meier_by_group(time, event, group),
        kaplan_meier_by_group_from_counts(counts_from_arrays(time, event, group=group)),
    ):
        for km, g in zip(curves.values(), ref["groups"], strict=True):
            assert km.conf_type == "log"
            assert_r(km.table["lower"].to_numpy(), g["curve"]["lower"], what=g["stratum"])
            assert_r(km.table["upper"].to_numpy(), g["curve"]["upper"], what=g["stratum"])


def test_median_follow_up_defaults_to_r_log_intervals(r_expected, surv_arrays, assert_r):
    refs = [r for r in r_expected["followup"] if r["conf_type"] == "log"]
    assert refs
    for ref in refs:  # R: survfit(Surv(time, 1 - status) ~ 1, data=d), summary(fit)$table
        time, event = surv_arrays(ref["data"])
        for fu in (
            median_follow_up(time, event),
            median_follow_up_from_counts(counts_from_arrays(time, event)),
        ):
            assert fu.reverse_km.conf_type == "log"
            assert_r(fu.median, ref["table"]["median"], what=ref["call"])
            assert_r(fu.lower, ref["table"]["lcl"], what=ref["call"])
            assert_r(fu.upper, ref["table"]["ucl"], what=ref["call"])


def test_no_signature_keeps_a_log_log_default():
    funcs = [
        kaplan_meier,
        kaplan_meier_from_counts,
        kaplan_meier_by_group,
        kaplan_meier_by_group_from_counts,
        median_follow_up,
        median_follow_up_from_counts,
        KaplanMeierResult.from_arrays,
        KaplanMeierResult.from_counts,
    ]
    for f in funcs:
        assert inspect.signature(f).parameters["conf_type"].default == "log", f.__qualname__
    assert KaplanMeierResult.__dataclass_fields__["conf_type"].default == "log"


# --- 2. a restricted mean's interval lies in [0, tau] ------------------------------------------
def test_restricted_mean_interval_is_clipped_at_zero():
    # times 1, 2 (deaths), 10 (censored), tau = 10. By hand (R's survmean):
    #   S = 2/3 on [1, 2), 1/3 on [2, 10]: rmean = 1 + 2/3 + 8/3 = 13/3
    #   var = A(1)^2 d/(n(n-d)) + A(2)^2 d/(n(n-d)) = (10/3)^2/6 + (8/3)^2/2 = 146/27
    # R: summary(survfit(Surv(c(1, 2, 10), c(1, 1, 0)) ~ 1), rmean=10)$table
    #    rmean 4.333, se(rmean) 2.325; survRM2::rmst2 would report the unclipped lower limit -0.2243
    r = restricted_mean([1, 2, 10], [1, 1, 0], tau=10)
    assert r.estimate == pytest.approx(13 / 3, rel=1e-12)
    assert r.std_err == pytest.approx(math.sqrt(146 / 27), rel=1e-12)
    unclipped_lower = 13 / 3 - Z975 * math.sqrt(146 / 27)
    assert unclipped_lower == pytest.approx(-0.224334, abs=1e-6)
    assert r.lower == 0.0
    assert r.upper == pytest.approx(13 / 3 + Z975 * math.sqrt(146 / 27), rel=1e-12)  # 8.891, < tau
    assert "CI 0 to 8.891" in r.summary()


def test_restricted_mean_interval_is_clipped_at_tau():
    # times 1 and 10, both deaths, tau = 10: S = 1/2 on [1, 10): rmean = 1 + 9/2 = 5.5,
    # var = A(1)^2 * 1/(2*1) = 4.5^2 / 2 = 10.125 (the death at 10 adds d/(n(n-d)) = 0, as in R).
    # R: summary(survfit(Surv(c(1, 10), c(1, 1)) ~ 1), rmean=10)$table -> rmean 5.5, se(rmean) 3.182
    r = kaplan_meier([1, 10], [1, 1]).restricted_mean(10)
    assert (r.estimate, r.std_err) == (5.5, pytest.approx(math.sqrt(10.125), rel=1e-12))
    assert 5.5 - Z975 * math.sqrt(10.125) < 0 and 5.5 + Z975 * math.sqrt(10.125) > 10
    assert (r.lower, r.upper) == (0.0, 10.0)


def test_restricted_mean_interval_inside_range_is_unchanged(surv_arrays):
    # R: summary(survfit(Surv(time, status) ~ 1, data=aml), rmean=100)$table: rmean 31.31, se 5.786
    time, event = surv_arrays("aml")
    r = restricted_mean(time, event, tau=100)
    assert r.lower == pytest.approx(31.312629 - Z975 * 5.786445, abs=1e-5)
    assert r.upper == pytest.approx(31.312629 + Z975 * 5.786445, abs=1e-5)
