"""Event counts per (stratum, group, time): the only input the survival estimators need.

Kaplan–Meier curves and log-rank tests depend on the data only through the number of events and
censorings at each distinct time (within each group and stratum). :func:`event_counts` asks the
database engine for exactly that, with one Ibis ``group_by(...).aggregate(...)``, so millions of
patients never have to be loaded into Python when times are coarse (days): only the small
aggregated frame comes back. With continuous times that aggregate has one row per subject anyway;
the engine then streams the time, a one-byte censoring flag it computes, and the labels in Arrow
batches, and NumPy aggregates them with sorts (see :mod:`amlcohort.stats._fast`). The first rows of
the stream decide between the two (no separate sample query); both ways give the same frame.

A Parquet file or an Arrow table is read with ``pyarrow.parquet`` in batches and aggregated by
the same NumPy kernels, with no engine in between (``event_counts("cohort.parquet", ...)``).
Whole-number times (days) are counted with ``bincount`` on every path, without a sort.

Arrays are aggregated by the same NumPy kernel (:func:`counts_from_arrays`).

The counts frame has the columns ``strata`` (if given), ``group`` (if given), ``time``, ``n_event``
and ``n_censor``, sorted by them in that order, one row per distinct key.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Iterable, Iterator

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

from amlcohort.stats import _fast
from amlcohort.stats._validation import ArrayLike, as_1d, check_event, check_same_length, check_time

__all__ = ["COUNT_COLUMNS", "counts_from_arrays", "event_counts", "validate_counts"]

#: Columns every counts frame has (``strata`` and ``group`` are optional key columns in front).
COUNT_COLUMNS: tuple[str, str, str] = ("time", "n_event", "n_censor")


def event_counts(
    table: ir.Table | pa.Table | str | os.PathLike[str],
    time: str,
    event: str,
    *,
    group: str | None = None,
    strata: str | None = None,
) -> pd.DataFrame:
    """Count events and censorings per (stratum, group, time), computed by the Ibis backend.

    Parameters
    ----------
    table:
        An Ibis table on any backend (DuckDB, SQLite, Polars, ...), a ``pyarrow.Table``, or the
        path of a Parquet file. A file is read with ``pyarrow.parquet`` one row group at a time
        (only the named columns) and aggregated by NumPy; no engine is started (the fastest way
        from a file: no SQL, no copy of the columns).
    time:
        Column with the follow-up time (numeric, non-negative, no missing values).
    event:
        Column with the event indicator: boolean, or numeric coded 1 = event, 0 = censored.
    group, strata:
        Optional columns with the comparison group and the stratum (no missing values).

    Returns
    -------
    pandas.DataFrame
        Columns ``strata`` / ``group`` (when requested), ``time`` (float), ``n_event``, ``n_censor``
        (int64), sorted by strata, group and time. Only the aggregated rows are materialised.

    Examples
    --------
    >>> import ibis, pandas as pd
    >>> t = ibis.memtable(pd.DataFrame({"t": [5, 5, 8], "d": [1, 0, 1]}))
    >>> event_counts(t, "t", "d")
       time  n_event  n_censor
    0   5.0        1         1
    1   8.0        1         0

    The R equivalent is ``table(time, status)`` per group, as used inside ``survfit``.
    """
    if isinstance(table, str | os.PathLike | pa.Table):
        return _arrow_counts(table, time, event, group=group, strata=strata).to_frame()
    return _engine_counts(table, time, event, group=group, strata=strata).to_frame()


#: Rows per batch read from a Parquet file: the batch's arrays and temporaries are recycled from
#: one batch to the next (fresh memory costs page faults), and the per-batch overhead stays small.
ARROW_BATCH_ROWS: int = 1 << 16
#: Parquet files with more rows than this are read with pyarrow's threads.
THREADED_READ_ROWS: int = 1 << 18


def _arrow_counts(
    source: pa.Table | str | os.PathLike[str],
    time: str,
    event: str,
    *,
    group: str | None = None,
    strata: str | None = None,
) -> _fast.Counts:
    """Counts from a Parquet file or an Arrow table, by NumPy, batch by batch.

    Every batch is checked (nulls, finite non-negative times, 0/1 or boolean events, labels
    without nulls). Whole-number times (days) are counted with ``bincount`` as the batches come,
    keeping nothing. The first batch whose times are not whole switches to sorting: the checked
    times, flags and label codes are then kept for :class:`~amlcohort.stats._fast.StreamAggregator`
    (and the source is read again from its start, unless that was its first batch).
    """
    import pyarrow.parquet as pq

    wanted = list(dict.fromkeys([time, event, *(c for c in (group, strata) if c is not None)]))
    parquet = None if isinstance(source, pa.Table) else pq.ParquetFile(source)
    columns = source.column_names if parquet is None else parquet.schema_arrow.names
    for arg, col in (("time", time), ("event", event), ("group", group), ("strata", strata)):
        if col is not None and col not in columns:
            raise ValueError(f"{arg} column {col!r} is not in the table (columns: {list(columns)})")

    def batches() -> Iterator[pa.RecordBatch]:
        if parquet is None:
            yield from source.select(wanted).to_batches(max_chunksize=ARROW_BATCH_ROWS)
        else:  # each call starts again from the first row group
            yield from parquet.iter_batches(
                batch_size=ARROW_BATCH_ROWS, columns=wanted, use_threads=threads
            )

    # pyarrow's threads decode the columns in parallel: worth it for large files only (starting
    # them costs more than a small file takes to read)
    threads = parquet is not None and parquet.metadata.num_rows > THREADED_READ_ROWS

    has_group, has_strata = group is not None, strata is not None
    agg = _fast.StreamAggregator(has_group, has_strata, keep=False)
    stream = batches()
    bad = seen = 0
    batch = None
    for batch in stream:
        bad += _add_arrow_batch(agg, batch, time, event, group=group, strata=strata)
        seen += 1
        if not agg.whole:
            break
    if not agg.whole:  # times that are not whole numbers: sort them (the batches are kept)
        agg = _fast.StreamAggregator(has_group, has_strata)
        if seen == 1:  # only the first batch was looked at: it is added again, the rest follow
            rest: Iterable[pa.RecordBatch] = itertools.chain([batch], stream)
        else:
            stream.close()
            rest = batches()
        del batch
        bad = 0
        for part in rest:
            bad += _add_arrow_batch(agg, part, time, event, group=group, strata=strata)
    if bad:
        raise ValueError(
            f"event column {event!r} must be boolean or coded 0/1 (1 = event, 0 = censored); "
            f"{bad} rows have other or missing values"
        )
    return agg.finish()


def _single(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One Arrow array (a row group's column is one chunk; several are concatenated)."""
    if isinstance(column, pa.ChunkedArray):
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column


def _add_arrow_batch(
    agg: _fast.StreamAggregator,
    batch: pa.Table | pa.RecordBatch,
    time: str,
    event: str,
    *,
    group: str | None,
    strata: str | None,
) -> int:
    """Check one batch of raw columns and hand it to the aggregator; the number of invalid events."""
    t_col = _single(batch.column(time))
    if not (pa.types.is_integer(t_col.type) or pa.types.is_floating(t_col.type)):
        if not pa.types.is_decimal(t_col.type):
            raise ValueError(f"time column {time!r} must be numeric, got {t_col.type}")
        t_col = t_col.cast(pa.float64())
    if t_col.null_count:
        raise ValueError(f"time column {time!r} contains missing or non-finite values")
    t = t_col.to_numpy()
    if t.dtype != np.float64:
        t = t.astype(np.float64)
    top = _check_streamed_times(t, time)
    e_col = _single(batch.column(event))
    if pa.types.is_boolean(e_col.type):
        e = e_col.to_numpy(zero_copy_only=False)
        if e_col.null_count:
            return e_col.null_count
        censored = np.logical_not(e).view(np.uint8)
    elif pa.types.is_integer(e_col.type) or pa.types.is_floating(e_col.type):
        if e_col.null_count:
            return e_col.null_count
        e = e_col.to_numpy()
        if len(e) and not (e.min() >= 0 and e.max() <= 1):  # NaN fails too
            return int(np.count_nonzero((e != 0) & (e != 1)))
        if e.dtype.kind == "f":
            bad = int(np.count_nonzero((e != 0) & (e != 1)))
            if bad:
                return bad
        censored = np.equal(e, 0).view(np.uint8)
    else:
        raise ValueError(f"event column {event!r} must be boolean or numeric 0/1, got {e_col.type}")
    labels: dict[str, np.ndarray | None] = {"g": None, "s": None}
    for key, name, what in (("g", group, "group"), ("s", strata, "strata")):
        if name is not None:
            col = _single(batch.column(name))
            if col.null_count:
                raise ValueError(f"{what} column {name!r} contains missing values")
            labels[key] = col.to_numpy(zero_copy_only=False)
    agg.add(t, censored, labels["g"], labels["s"], top=top)
    return 0


#: Above this share of distinct times in a sample, aggregating in the engine would return about as
#: many rows as the table has: the engine then streams the columns and NumPy sorts and counts them.
DISTINCT_SHARE: float = 0.5
SAMPLE_ROWS: int = 10_000


def _engine_counts(
    table: ir.Table,
    time: str,
    event: str,
    *,
    group: str | None = None,
    strata: str | None = None,
    method: str = "auto",
) -> _fast.Counts:
    """Counts per (stratum, group, time) from an Ibis table, as arrays (see :func:`event_counts`).

    ``method``: ``"engine"`` (``GROUP BY`` in the backend; right when times are coarse, e.g. days),
    ``"stream"`` (the backend returns the columns as Arrow and NumPy aggregates them with sorts: the
    fast choice for continuous times, where there is one row per subject either way) or ``"auto"``
    (decided from the share of distinct times in the first rows). All three give the same counts.
    """
    for arg, col in (("time", time), ("event", event), ("group", group), ("strata", strata)):
        if col is not None and col not in table.columns:
            raise ValueError(f"{arg} column {col!r} is not in the table (columns: {list(table.columns)})")
    ev = table[event]
    if not (ev.type().is_boolean() or ev.type().is_numeric()):
        raise ValueError(f"event column {event!r} must be boolean or numeric 0/1, got {ev.type()}")
    if method not in ("auto", "engine", "stream"):
        raise ValueError(f"method must be 'auto', 'engine' or 'stream', got {method!r}")
    if method != "engine" and table[time].type().is_numeric():
        # the columns are streamed in batches; with "auto" the first rows decide, and for coarse
        # times the stream is closed after its first batch and the engine aggregates instead
        with warnings.catch_warnings():
            # ibis 12 streams DuckDB results with a call DuckDB 1.5 deprecates; nothing to act on here
            warnings.filterwarnings("ignore", r"fetch_record_batch\(\) is deprecated", DeprecationWarning)
            reader = _stream_reader(table, time, event, group=group, strata=strata)
            try:
                counts = _stream_counts(
                    reader, time, event, group=group, strata=strata, decide=method == "auto"
                )
            finally:
                reader.close()
        if counts is not None:
            return counts
    keys: dict[str, ir.Value] = {}
    if strata is not None:
        keys["strata"] = table[strata]
    if group is not None:
        keys["group"] = table[group]
    keys["time"] = table[time]
    if ev.type().is_boolean():
        is_event, is_censor = ev, ~ev
    else:
        is_event, is_censor = ev == 1, ev == 0
    expr = table.group_by(**keys).aggregate(
        n_event=is_event.sum(),
        n_censor=is_censor.sum(),
        n_rows=ibis._.count(),
    )
    raw = expr.to_pyarrow()
    columns = _finish_counts(raw, time_name=time, event_name=event, group_name=group, strata_name=strata)
    return _fast.counts_from_frame(columns, tuple(k for k in ("strata", "group") if k in columns))


def _column_values(column: pa.ChunkedArray) -> np.ndarray:
    """An Arrow column as NumPy (numbers stay numbers, strings become objects)."""
    return column.to_numpy() if column.null_count == 0 else column.to_pandas().to_numpy()


def _finish_counts(
    raw: pa.Table,
    *,
    time_name: str,
    event_name: str,
    group_name: str | None,
    strata_name: str | None,
) -> dict[str, np.ndarray]:
    """Check the aggregated rows and fix dtypes (NumPy on the small result; no pandas frame)."""
    counted = {}
    for col in ("n_event", "n_censor", "n_rows"):
        values = raw[col].fill_null(0) if raw[col].null_count else raw[col]
        counted[col] = values.to_numpy().astype(np.int64, copy=False)
    bad_event = int((counted["n_rows"] - counted["n_event"] - counted["n_censor"]).sum())
    if bad_event:
        raise ValueError(
            f"event column {event_name!r} must be boolean or coded 0/1 (1 = event, 0 = censored); "
            f"{bad_event} rows have other or missing values"
        )
    times = _column_values(raw["time"])
    if times.dtype.kind not in "iuf":
        times = pd.to_numeric(times, errors="coerce")
    times = np.asarray(times, dtype=np.float64)
    if not np.all(np.isfinite(times)):
        raise ValueError(f"time column {time_name!r} contains missing or non-finite values")
    if (times < 0).any():
        raise ValueError(f"time column {time_name!r} contains negative values")
    out: dict[str, np.ndarray] = {}
    for key, name in (("strata", strata_name), ("group", group_name)):
        if key in raw.column_names:
            values = _column_values(raw[key])
            if raw[key].null_count or pd.isna(values).any():
                raise ValueError(f"{key} column {name!r} contains missing values")
            out[key] = values
    out["time"] = times
    out["n_event"] = counted["n_event"]
    out["n_censor"] = counted["n_censor"]
    return out


#: Rows per streamed batch: small enough that deciding on the first batch wastes little when the
#: engine aggregates after all, large enough that the per-batch overhead does not show.
STREAM_BATCH_ROWS: int = 1 << 17


def _stream_reader(
    table: ir.Table, time: str, event: str, *, group: str | None, strata: str | None
) -> pa.RecordBatchReader:
    """The engine's stream of float times, censoring flags (0/1, 2 = invalid) and labels, in batches.

    The flag is computed by the engine, so one byte a subject comes back instead of the event column.
    """
    ev = table[event]
    if ev.type().is_boolean():
        censored = ibis.cases((ev, 0), (~ev, 1), else_=2)
    else:
        censored = ibis.cases((ev == 1, 0), (ev == 0, 1), else_=2)
    t = table[time]
    cols: dict[str, ir.Value] = {
        "t": t if t.type().is_floating() and t.type().nbytes == 8 else t.cast("float64"),
        "c": censored.cast("int8"),  # a signed byte: every backend has one (PostgreSQL has no unsigned)
    }
    if group is not None:
        cols["g"] = table[group]
    if strata is not None:
        cols["s"] = table[strata]
    return table.select(**cols).to_pyarrow_batches(chunk_size=STREAM_BATCH_ROWS)


def _check_streamed_times(t: np.ndarray, time: str) -> float:
    """Finite and non-negative, in two reductions (NaN fails ``min >= 0``); the largest time."""
    if not len(t):
        return 0.0
    top = float(t.max())
    if not (t.min() >= 0 and top < np.inf):
        if np.isnan(t).any() or np.isinf(t).any():
            raise ValueError(f"time column {time!r} contains missing or non-finite values")
        raise ValueError(f"time column {time!r} contains negative values")
    return top


def _stream_counts(
    reader: pa.RecordBatchReader,
    time: str,
    event: str,
    *,
    group: str | None,
    strata: str | None,
    decide: bool,
) -> _fast.Counts | None:
    """NumPy checks and aggregates the streamed batches; None when ``decide`` finds coarse times.

    With ``decide`` the first ``SAMPLE_ROWS`` rows are looked at first: when fewer than
    ``DISTINCT_SHARE`` of their times are distinct, aggregating in the engine returns far fewer
    rows, and None tells the caller to do that.
    """
    agg = _fast.StreamAggregator(group is not None, strata is not None)
    pending: list[pa.RecordBatch] = []
    seen = 0
    bad = 0
    for batch in reader:
        if decide:
            pending.append(batch)
            seen += batch.num_rows
            if seen < SAMPLE_ROWS:
                continue
            decide = False
            if _coarse(pending):
                return None
        for b in pending or [batch]:
            bad += _add_batch(agg, b, time, group=group, strata=strata)
        pending = []
    if decide and _coarse(pending):
        return None
    for b in pending:
        bad += _add_batch(agg, b, time, group=group, strata=strata)
    if bad:
        raise ValueError(
            f"event column {event!r} must be boolean or coded 0/1 (1 = event, 0 = censored); "
            f"{bad} rows have other or missing values"
        )
    return agg.finish()


def _coarse(batches: list[pa.RecordBatch]) -> bool:
    """Few distinct times among the first ``SAMPLE_ROWS`` rows (or fewer than 1,000 rows in all)."""
    times = pa.chunked_array([b.column(0) for b in batches], type=pa.float64())[:SAMPLE_ROWS]
    n_sample = len(times)
    return n_sample < 1000 or len(times.unique()) <= DISTINCT_SHARE * n_sample


def _add_batch(
    agg: _fast.StreamAggregator, batch: pa.RecordBatch, time: str, *, group: str | None, strata: str | None
) -> int:
    """Check one batch and hand it to the aggregator; the number of invalid event values."""
    t_col = batch.column(0)
    if t_col.null_count:
        raise ValueError(f"time column {time!r} contains missing or non-finite values")
    t = t_col.to_numpy()
    top = _check_streamed_times(t, time)
    c = batch.column(1).to_numpy()
    bad = int(np.count_nonzero(c > 1)) if len(c) and c.max() > 1 else 0
    if c.dtype != np.uint8 and not bad:
        c = c.view(np.uint8) if c.dtype == np.int8 else c.astype(np.uint8)  # 0/1: the same bytes
    labels: dict[str, np.ndarray | None] = {"g": None, "s": None}
    for i, (key, name, what) in enumerate((("g", group, "group"), ("s", strata, "strata"))):
        if name is not None:
            col = batch.column(2 + i - (1 if group is None else 0))
            if col.null_count:
                raise ValueError(f"{what} column {name!r} contains missing values")
            labels[key] = col.to_numpy(zero_copy_only=False)
    if not bad:
        agg.add(t, c, labels["g"], labels["s"], top=top)
    return bad


def checked_arrays(
    time: ArrayLike,
    event: ArrayLike,
    group: ArrayLike | None = None,
    strata: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray | None, ...]]:
    """Checked per-subject arrays: float times, int events, then group/strata (None when absent)."""
    t = check_time("time", as_1d("time", time))
    e = as_1d("event", event)
    named = [("time", t), ("event", e)]
    keys: list[np.ndarray | None] = []
    for name, values in (("group", group), ("strata", strata)):
        if values is None:
            keys.append(None)
            continue
        arr = as_1d(name, values)
        named.append((name, arr))
        if pd.isna(arr).any():
            raise ValueError(f"{name} contains missing values")
        keys.append(arr)
    check_same_length(named)
    return t, check_event("event", e), tuple(keys)


def counts_from_arrays(
    time: ArrayLike,
    event: ArrayLike,
    group: ArrayLike | None = None,
    strata: ArrayLike | None = None,
) -> pd.DataFrame:
    """Counts frame for in-memory arrays: the same frame :func:`event_counts` returns, from NumPy.

    Aggregated with sorts and cumulative sums (no Python loop over times); empty input gives an
    empty frame.

    >>> counts_from_arrays([9, 13, 13], [1, 1, 0])
       time  n_event  n_censor
    0   9.0        1         0
    1  13.0        1         1
    """
    t, e, (g, s) = checked_arrays(time, event, group, strata)
    return _fast.aggregate_arrays(t, e, g, s).to_frame()


def validate_counts(counts: pd.DataFrame, *, keys: tuple[str, ...] = ()) -> pd.DataFrame:
    """Check a user-supplied counts frame; sum duplicate keys; sort.

    ``keys`` are the key columns required in addition to ``time`` (e.g. ``("group",)``).
    """
    checked = checked_counts(counts, keys=keys)
    if len(checked) == 0:
        raise ValueError("counts has no observations (all n_event and n_censor are zero)")
    return checked.to_frame()


def checked_counts(counts: pd.DataFrame, *, keys: tuple[str, ...] = ()) -> _fast.Counts:
    """:func:`validate_counts` as arrays (internal); an empty frame gives empty counts."""
    if not isinstance(counts, pd.DataFrame):
        raise TypeError(f"counts must be a pandas DataFrame, got {type(counts).__name__}")
    missing = [c for c in (*keys, *COUNT_COLUMNS) if c not in counts.columns]
    if missing:
        raise ValueError(f"counts is missing the columns {missing}; it needs {[*keys, *COUNT_COLUMNS]}")
    if counts.empty and not keys:
        raise ValueError("counts is empty: at least one observation is needed")
    columns: dict[str, object] = {key: counts[key] for key in keys}
    time = counts["time"]
    if time.dtype.kind not in "iuf":
        time = pd.to_numeric(time, errors="coerce")
    t = time.to_numpy(dtype=np.float64)
    if len(t) and not (t.min() >= 0 and t.max() < np.inf):  # min is NaN when any is missing
        raise ValueError("counts['time'] must be finite, non-negative and not missing")
    columns["time"] = t
    for col in ("n_event", "n_censor"):
        values = counts[col]
        if values.dtype.kind in "iu":
            arr = values.to_numpy()
            if len(arr) and arr.min() < 0:
                raise ValueError(f"counts[{col!r}] must hold non-negative whole numbers")
        else:
            num = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
            if np.isnan(num).any() or (num < 0).any() or not np.all(num == np.floor(num)):
                raise ValueError(f"counts[{col!r}] must hold non-negative whole numbers")
            arr = num
        columns[col] = arr.astype(np.int64, copy=False)
    for key in keys:
        dtype = counts[key].dtype
        plain = isinstance(dtype, np.dtype) and dtype.kind in "iub"  # NumPy integers cannot be missing
        if not plain and counts[key].isna().any():
            raise ValueError(f"counts[{key!r}] contains missing values")
    return _fast.counts_from_frame(columns, keys)
