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

from amlcohort.stats import (
    _fast,
    counts_from_arrays,
    kaplan_meier,
    kaplan_meier_by_group,
    logrank_test,
    validate_counts,
)
from amlcohort.stats import counts as counts_module
from amlcohort.stats.counts import _engine_counts
from amlcohort.stats.kaplan_meier import R_TOLERANCE, median_rule, median_rule_monotone


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


@pytest.mark.parametrize("whole_days", [False, True])
def test_two_group_logrank_matches_statsmodels(whole_days):
    """Two groups take a dedicated kernel; shared times across the groups are pooled once."""
    df = _data(20_000, whole_days=whole_days, seed=13)
    two = df[df["arm"] != "ldac"]
    ours = logrank_test(two["time"], two["status"], two["arm"])
    stat, p = survdiff(two["time"].to_numpy(), two["status"].to_numpy(), two["arm"].to_numpy())
    assert ours.dof == 1
    assert ours.statistic == pytest.approx(stat, rel=1e-9)
    assert ours.p_value == pytest.approx(p, rel=1e-7)
    assert ours.table["observed"].sum() == two["status"].sum()
    assert ours.table["expected"].sum() == pytest.approx(two["status"].sum(), rel=1e-12)
    v = ours.variance.to_numpy()
    assert v[0, 0] == pytest.approx(v[1, 1]) and v[0, 1] == pytest.approx(-v[0, 0])
    strat = logrank_test(two["time"], two["status"], two["arm"], strata=two["site"])
    stat_s, _ = survdiff(
        two["time"].to_numpy(), two["status"].to_numpy(), two["arm"].to_numpy(), strata=two["site"].to_numpy()
    )
    assert strat.statistic == pytest.approx(stat_s, rel=1e-9)


@pytest.mark.parametrize("conf_type", ["log", "log-log", "plain"])
@pytest.mark.parametrize("tied", [False, True])
def test_median_ci_computed_lazily_equals_full_bands(conf_type, tied):
    """Long curves find the median's limits on the part of each band up to 0.5; same answer."""
    df = _data(30_000, whole_days=False, seed=17)
    if tied:  # tenths of a day: ties, and still more than 4096 distinct times
        df["time"] = np.round(df["time"], 1)
    lazy = kaplan_meier(df["time"], df["status"], conf_type=conf_type)
    limits = lazy.median_ci_  # before the full bands exist
    assert "_bounds" not in lazy.__dict__
    full = kaplan_meier(df["time"], df["status"], conf_type=conf_type)
    _ = full.lower  # the full bands now exist: the direct rule is used
    assert full.median_ci_ == limits
    time = full.table["time"].to_numpy()
    lo = time[np.argmax(full.lower < 0.5 + R_TOLERANCE)]
    assert limits[0] == lo
    assert limits[0] < lazy.median_ < limits[1]


def test_median_ci_midpoint_rule_on_long_curves():
    """No censoring, 10,000 distinct times: S is exactly 0.5 on an interval; R takes midpoints."""
    time = np.arange(1.0, 10_001.0)
    km = kaplan_meier(time, np.ones_like(time), conf_type="log")
    assert km.median_ == 5000.5
    full = kaplan_meier(time, np.ones_like(time), conf_type="log")
    expected = (median_rule(full.lower, time), median_rule(full.upper, time))
    assert km.median_ci_ == expected


# ---------------------------------------------------------------------------------------------
# Streamed batches, blocked kernels and fast checks: the same numbers as the plain formulas
# ---------------------------------------------------------------------------------------------
def test_streamed_small_batches_equal_the_arrays(monkeypatch):
    """Many batches (700 rows), -0.0 among the times, 14 (stratum x group) segments (> 8)."""
    df = _data(6000, whole_days=False, seed=23)
    df.loc[:9, "time"] = -0.0
    df["site"] = np.arange(6000) % 7
    monkeypatch.setattr(counts_module, "STREAM_BATCH_ROWS", 700)
    table = ibis.duckdb.connect().create_table("d", ibis.memtable(df))
    for strata in (None, "site"):
        streamed = _engine_counts(table, "time", "status", group="arm", strata=strata, method="stream")
        keys = {"group": df["arm"], "strata": df["site"] if strata else None}
        pd.testing.assert_frame_equal(
            streamed.to_frame(), counts_from_arrays(df["time"], df["status"], **keys)
        )
    auto = _engine_counts(table, "time", "status", group="arm", method="auto").to_frame()
    assert len(auto) > 5000  # continuous: the stream was kept, not the engine's GROUP BY
    assert (auto["time"] == 0).sum() == 3 and not np.signbit(auto["time"]).any()  # -0.0 is 0.0


def test_streamed_errors_in_a_later_batch_name_the_column(monkeypatch):
    monkeypatch.setattr(counts_module, "STREAM_BATCH_ROWS", 500)
    df = _data(3000, whole_days=False, seed=29)
    bad_event = df.assign(status=df["status"].where(df.index != 2500, 2))
    negative = df.assign(time=df["time"].where(df.index != 2900, -1.0))
    con = ibis.duckdb.connect()
    with pytest.raises(ValueError, match=r"event column 'status' must be boolean or coded 0/1.*1 rows"):
        _engine_counts(con.create_table("e", ibis.memtable(bad_event)), "time", "status", method="stream")
    with pytest.raises(ValueError, match="time column 'time' contains negative values"):
        _engine_counts(con.create_table("n", ibis.memtable(negative)), "time", "status", method="stream")
    whole = _engine_counts(
        con.create_table("w", ibis.memtable(df.assign(time=np.floor(df["time"])))), "time", "status"
    )
    assert len(whole) < 2000  # coarse times: decided on the first rows, the engine aggregated


def _plain_product_limit(d: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The textbook formulas in one go (the reference for the blocked pass)."""
    n = np.cumsum((d + c)[::-1])[::-1].astype(np.float64)
    surv = np.cumprod(1.0 - d / n)
    with np.errstate(divide="ignore"):
        term = d / (n * (n - d))
    return surv, np.sqrt(np.cumsum(term))


def test_blocked_product_limit_is_identical_to_one_pass(monkeypatch):
    rng = np.random.default_rng(31)
    d = rng.integers(0, 3, 5000)
    c = rng.integers(0, 2, 5000)
    c[d + c == 0] = 1
    d[-1], c[-1] = 2, 0  # S reaches 0: the Greenwood sum becomes infinite
    monkeypatch.setattr(_fast, "KM_BLOCK", 64)
    surv, se_log = _fast.product_limit(d, c)
    ref_surv, ref_se = _plain_product_limit(d, c)
    np.testing.assert_array_equal(surv, ref_surv)  # the same products in the same order: bit-identical
    np.testing.assert_array_equal(se_log, ref_se)
    assert surv[-1] == 0.0 and np.isinf(se_log[-1])
    np.testing.assert_array_equal(_fast.number_at_risk(d, c), np.cumsum((d + c)[::-1])[::-1])


@pytest.mark.parametrize("whole_days", [False, True])
def test_blocked_two_group_logrank_equals_one_block(monkeypatch, whole_days):
    """Blocks of 50 rows per group (ties across blocks impossible by construction) vs one block."""
    df = _data(8000, whole_days=whole_days, seed=37)
    two = df[df["arm"] != "ldac"]
    one = logrank_test(two["time"], two["status"], two["arm"])
    monkeypatch.setattr(_fast, "LOGRANK_BLOCK", 50)
    many = logrank_test(two["time"], two["status"], two["arm"])
    assert many.statistic == pytest.approx(one.statistic, rel=1e-12)
    np.testing.assert_allclose(many.expected_sums, one.expected_sums, rtol=1e-12)
    np.testing.assert_allclose(many.variance_matrix, one.variance_matrix, rtol=1e-12)
    # one group entirely after the other: blocks that hold a single group
    late = logrank_test([1.0, 2.0, 3.0, 10.0, 11.0, 12.0], [1, 1, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1])
    monkeypatch.setattr(_fast, "LOGRANK_BLOCK", 1)
    again = logrank_test([1.0, 2.0, 3.0, 10.0, 11.0, 12.0], [1, 1, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1])
    assert again.statistic == pytest.approx(late.statistic, rel=1e-12)


def test_median_by_binary_search_equals_the_scan():
    rng = np.random.default_rng(41)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        steps = rng.choice([1.0, 1.0, 0.9, 0.75, 0.5, 0.0], n)
        y = np.cumprod(steps)
        if rng.random() < 0.3:  # a plateau at exactly 0.5
            y = np.where(y < 0.5, y, np.maximum(y, 0.5))
            y = np.minimum.accumulate(y)
        x = np.sort(rng.random(n)) * 100
        expected = median_rule(y, x)
        got = median_rule_monotone(y, x)
        assert got == expected or (np.isnan(got) and np.isnan(expected))


def test_counts_frame_order_checks_in_blocks(monkeypatch):
    """Sorted frames pass untouched; a drop in time inside a group, a repeat or an empty row is fixed."""
    monkeypatch.setattr(_fast, "CHECK_BLOCK", 3)
    good = pd.DataFrame(
        {"group": [0, 0, 0, 1, 1, 1, 1], "time": [1.0, 2, 5, 0.5, 2, 3, 8], "n_event": [1, 0, 1, 1, 1, 0, 1]}
    ).assign(n_censor=[0, 1, 0, 0, 1, 1, 0])
    checked = validate_counts(good, keys=("group",))
    pd.testing.assert_frame_equal(checked, good)
    shuffled = good.iloc[[0, 2, 1, 3, 4, 6, 5]].reset_index(drop=True)  # time drops inside each group
    pd.testing.assert_frame_equal(validate_counts(shuffled, keys=("group",)), good)
    repeated = pd.concat([good, good.iloc[[4]]]).sort_values(["group", "time"], kind="stable")
    summed = validate_counts(repeated.reset_index(drop=True), keys=("group",))
    assert summed["n_event"].tolist() == [1, 0, 1, 1, 2, 0, 1] and summed["n_censor"].iloc[4] == 2
    empty = good.assign(
        n_event=good["n_event"].where(good.index != 5, 0), n_censor=good["n_censor"].where(good.index != 5, 0)
    )
    assert validate_counts(empty, keys=("group",))["time"].tolist() == [1.0, 2, 5, 0.5, 2, 8]


@pytest.mark.parametrize("backend", ["sqlite", "polars"])
def test_streamed_counts_on_other_backends(backend):
    """The stream path is plain Ibis: the censoring flag is a signed byte every backend has."""
    df = _data(3000, whole_days=False, seed=43).assign(died=lambda d: d["status"] == 1)
    con = getattr(ibis, backend).connect()
    table = con.create_table("d", df) if backend == "polars" else con.create_table("d", ibis.memtable(df))
    expected = counts_from_arrays(df["time"], df["status"], group=df["arm"])
    for event in ("status", "died"):  # numeric 0/1 and boolean
        streamed = _engine_counts(table, "time", event, group="arm", method="stream").to_frame()
        pd.testing.assert_frame_equal(streamed, expected)


# ---------------------------------------------------------------------------------------------
# Parquet files and Arrow tables; whole-number times counted with bincount
# ---------------------------------------------------------------------------------------------
def _parquet(df: pd.DataFrame, path, row_group_size: int | None = None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, path, row_group_size=row_group_size)
    return table


@pytest.mark.parametrize("whole_days", [False, True])
def test_parquet_file_and_arrow_table_counts_equal_the_engine(tmp_path, monkeypatch, whole_days):
    """Several batches (400 rows) and row groups, strata and string groups, bool events."""
    monkeypatch.setattr(counts_module, "ARROW_BATCH_ROWS", 400)
    df = _data(3000, whole_days=whole_days, seed=41)
    df.loc[:4, "time"] = -0.0
    table = _parquet(df, tmp_path / "d.parquet", row_group_size=1100)
    engine = ibis.duckdb.connect().create_table("d", ibis.memtable(df))
    for keys in ({}, {"group": "arm"}, {"group": "arm", "strata": "site"}, {"strata": "site"}):
        expected = _engine_counts(engine, "time", "status", method="stream", **keys).to_frame()
        for source in (tmp_path / "d.parquet", str(tmp_path / "d.parquet"), table):
            got = counts_module.event_counts(source, "time", "status", **keys)
            pd.testing.assert_frame_equal(got, expected)
    assert (len(expected) < 2000) == whole_days
    as_bool = _parquet(df.assign(status=df["status"] == 1), tmp_path / "b.parquet")
    pd.testing.assert_frame_equal(
        counts_module.event_counts(as_bool, "time", "status", group="arm"),
        counts_module.event_counts(table, "time", "status", group="arm"),
    )


def test_parquet_whole_times_then_fractions_in_a_later_batch(tmp_path, monkeypatch):
    """The first batches are whole days (counted by bincount, nothing kept), a later one is not:
    the file is read again and sorted; integer time columns and a growing time range too."""
    monkeypatch.setattr(counts_module, "ARROW_BATCH_ROWS", 500)
    df = _data(3000, whole_days=True, seed=43)
    df["time"] = np.sort(df["time"].to_numpy())  # later batches reach larger times
    df.loc[2700, "time"] += 0.5
    _parquet(df, tmp_path / "mixed.parquet")
    expected = counts_from_arrays(df["time"], df["status"], group=df["arm"])
    got = counts_module.event_counts(tmp_path / "mixed.parquet", "time", "status", group="arm")
    pd.testing.assert_frame_equal(got, expected)
    whole = df.assign(time=np.floor(df["time"]).astype(np.int64))
    _parquet(whole, tmp_path / "int.parquet")
    got = counts_module.event_counts(tmp_path / "int.parquet", "time", "status", group="arm")
    pd.testing.assert_frame_equal(got, counts_from_arrays(whole["time"], whole["status"], group=whole["arm"]))


def test_parquet_errors_name_the_column(tmp_path, monkeypatch):
    monkeypatch.setattr(counts_module, "ARROW_BATCH_ROWS", 500)
    df = _data(2000, whole_days=False, seed=47)
    cases = {
        "time column 'nope' is not in the table": ("nope", df),
        r"event column 'status' must be boolean or coded 0/1.*2 rows": (
            "time",
            df.assign(status=df["status"].where(~df.index.isin([10, 1900]), 2)),
        ),
        "time column 'time' contains negative values": (
            "time",
            df.assign(time=df["time"].where(df.index != 1500, -1.0)),
        ),
        "time column 'time' contains missing": ("time", df.assign(time=df["time"].where(df.index != 1700))),
        "group column 'arm' contains missing values": ("time", df.assign(arm=df["arm"].where(df.index != 5))),
    }
    for message, (time_col, frame) in cases.items():
        _parquet(frame, tmp_path / "bad.parquet")
        with pytest.raises(ValueError, match=message):
            counts_module.event_counts(tmp_path / "bad.parquet", time_col, "status", group="arm")


def test_whole_number_histogram_equals_the_sort():
    rng = np.random.default_rng(53)
    n = 20_000
    time = np.floor(rng.exponential(40.0, n))
    event = rng.integers(0, 2, n)
    key = rng.integers(0, 5, n)
    hist = _fast.whole_histogram(time, event == 0, key, 5)
    assert hist is not None and hist.shape == (int(time.max()) + 1, 5, 2)
    assert hist.sum() == n and hist[..., 0].sum() == event.sum()
    fractions = time + 0.25
    assert _fast.whole_histogram(fractions, event == 0, key, 5) is None
    late = time.copy()
    late[-1] += 0.5  # a fraction after the rows looked at first
    assert _fast.whole_histogram(late, event == 0, key, 5) is None
    huge = time.copy()
    huge[0] = 1e12  # whole, but the histogram would be far larger than the data
    assert _fast.whole_histogram(huge, event == 0, key, 5) is None
    # aggregate_arrays takes the bincount path here: the same counts as a plain groupby
    counted = _fast.aggregate_arrays(time, event, key).to_frame()
    plain = (
        pd.DataFrame({"group": key, "time": time, "n_event": event, "n_censor": 1 - event})
        .groupby(["group", "time"], as_index=False)
        .sum()
    )
    pd.testing.assert_frame_equal(counted, plain)
