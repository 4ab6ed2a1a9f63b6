"""The vectorised survival paths agree with each other and with an independent implementation.

statsmodels (``SurvfuncRight``, ``survdiff``) is a separate implementation of the same estimators;
the R reference values themselves are checked in the other test files.
"""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest
from statsmodels.duration.survfunc import SurvfuncRight, survdiff

from amlcohort.stats import counts_from_arrays, kaplan_meier, kaplan_meier_by_group, logrank_test
from amlcohort.stats.counts import _engine_counts


def _data(n: int, *, whole_days: bool, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    time = rng.exponential(300.0, n)
    if whole_days:
        time = np.floor(time)
    return pd.DataFrame(
        {
            "time": time,
            "status": (rng.random(n) < 0.7).astype(np.int64),
            "arm": rng.choice(["aza_ven", "flag_ida", "ldac"], n),
            "site": rng.choice(["north", "south"], n),
        }
    )


@pytest.mark.parametrize("whole_days", [False, True])
def test_stream_engine_and_array_counts_are_identical(whole_days):
    df = _data(5000, whole_days=whole_days)
    table = ibis.duckdb.connect().create_table("d", ibis.memtable(df))
    frames = [
        _engine_counts(table, "time", "status", group="arm", strata="site", method=m).to_frame()
        for m in ("engine", "stream", "auto")
    ]
    frames.append(counts_from_arrays(df["time"], df["status"], group=df["arm"], strata=df["site"]))
    for other in frames[1:]:
        pd.testing.assert_frame_equal(other, frames[0])
    assert frames[0]["n_event"].sum() == df["status"].sum()
    assert (len(frames[0]) < 5000) == whole_days


@pytest.mark.parametrize("whole_days", [False, True])
def test_kaplan_meier_matches_statsmodels(whole_days):
    df = _data(3000, whole_days=whole_days, seed=11)
    curves = kaplan_meier_by_group(df["time"], df["status"], df["arm"], conf_type="log")
    assert list(curves) == ["aza_ven", "flag_ida", "ldac"]
    for arm, km in curves.items():
        part = df[df["arm"] == arm]
        sm = SurvfuncRight(part["time"].to_numpy(), part["status"].to_numpy())
        # statsmodels reports event times only
        at_events = km.table[km.table["n_event"] > 0]
        np.testing.assert_allclose(at_events["time"], sm.surv_times)
        np.testing.assert_allclose(at_events["survival"], sm.surv_prob, rtol=1e-10)
        np.testing.assert_allclose(at_events["std_err"], sm.surv_prob_se, rtol=1e-8)
        assert km.n == len(part)


@pytest.mark.parametrize("whole_days", [False, True])
def test_logrank_k_groups_and_strata_match_statsmodels(whole_days):
    df = _data(4000, whole_days=whole_days, seed=3)
    ours = logrank_test(df["time"], df["status"], df["arm"])
    stat, p = survdiff(df["time"].to_numpy(), df["status"].to_numpy(), df["arm"].to_numpy())
    assert ours.dof == 2
    assert ours.statistic == pytest.approx(stat, rel=1e-9)
    assert ours.p_value == pytest.approx(p, rel=1e-7)
    strat = logrank_test(df["time"], df["status"], df["arm"], strata=df["site"])
    stat_s, _ = survdiff(
        df["time"].to_numpy(), df["status"].to_numpy(), df["arm"].to_numpy(), strata=df["site"].to_numpy()
    )
    assert strat.statistic == pytest.approx(stat_s, rel=1e-9)
    assert strat.strata == ("north", "south")
    fh = logrank_test(df["time"], df["status"], df["arm"], weights="fleming-harrington", rho=1.0)
    stat_fh, _ = survdiff(
        df["time"].to_numpy(), df["status"].to_numpy(), df["arm"].to_numpy(), weight_type="fh", fh_p=1.0
    )
    assert fh.statistic == pytest.approx(stat_fh, rel=1e-9)


def test_many_strata_take_the_sorted_path():
    df = _data(3000, whole_days=True, seed=5)
    df["site"] = np.arange(3000) % 12  # 12 strata x 3 groups > 8 segments
    a = counts_from_arrays(df["time"], df["status"], group=df["arm"], strata=df["site"])
    frame = df.groupby(["site", "arm", "time"])["status"].agg(["sum", "count"]).reset_index()
    assert len(a) == len(frame)
    np.testing.assert_array_equal(a["n_event"], frame["sum"])
    np.testing.assert_array_equal(a["n_censor"], frame["count"] - frame["sum"])


def test_unsorted_counts_frame_with_duplicates_is_summed():
    counts = pd.DataFrame({"time": [5.0, 2.0, 5.0, 9.0], "n_event": [1, 1, 0, 1], "n_censor": [0, 0, 2, 0]})
    km = kaplan_meier.from_counts(counts, conf_type="log")
    assert km.table["time"].tolist() == [2.0, 5.0, 9.0]
    assert km.table["n_censor"].tolist() == [0, 2, 0]
    assert km.n == 5
