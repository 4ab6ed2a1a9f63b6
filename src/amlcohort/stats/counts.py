"""Event counts per (stratum, group, time): the only input the survival estimators need.

Kaplan–Meier curves and log-rank tests depend on the data only through the number of events and
censorings at each distinct time (within each group and stratum). :func:`event_counts` asks the
database engine for exactly that, with one Ibis ``group_by(...).aggregate(...)``, so millions of
patients never have to be loaded into Python: only the small aggregated frame comes back.

Arrays go through the same code: :func:`counts_from_arrays` wraps them in an ``ibis.memtable`` and
calls :func:`event_counts`, so there is one aggregation and one set of checks.

The counts frame has the columns ``strata`` (if given), ``group`` (if given), ``time``, ``n_event``
and ``n_censor``, sorted by them in that order, one row per distinct key.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from amlcohort.stats._validation import ArrayLike, as_1d, check_event, check_same_length, check_time

__all__ = ["COUNT_COLUMNS", "counts_from_arrays", "event_counts", "validate_counts"]

#: Columns every counts frame has (``strata`` and ``group`` are optional key columns in front).
COUNT_COLUMNS: tuple[str, str, str] = ("time", "n_event", "n_censor")


def event_counts(
    table: ir.Table,
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
        An Ibis table on any backend (DuckDB, SQLite, Polars, ...).
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
    for arg, col in (("time", time), ("event", event), ("group", group), ("strata", strata)):
        if col is not None and col not in table.columns:
            raise ValueError(f"{arg} column {col!r} is not in the table (columns: {list(table.columns)})")

    keys: dict[str, ir.Value] = {}
    if strata is not None:
        keys["strata"] = table[strata]
    if group is not None:
        keys["group"] = table[group]
    keys["time"] = table[time]

    ev = table[event]
    if ev.type().is_boolean():
        is_event, is_censor = ev, ~ev
    elif ev.type().is_numeric():
        is_event, is_censor = ev == 1, ev == 0
    else:
        raise ValueError(f"event column {event!r} must be boolean or numeric 0/1, got {ev.type()}")

    expr = table.group_by(**keys).aggregate(
        n_event=is_event.sum(),
        n_censor=is_censor.sum(),
        n_rows=ibis._.count(),
    )
    raw = expr.to_pandas()
    return _finish_counts(raw, time_name=time, event_name=event, group_name=group, strata_name=strata)


def _finish_counts(
    raw: pd.DataFrame,
    *,
    time_name: str,
    event_name: str,
    group_name: str | None,
    strata_name: str | None,
) -> pd.DataFrame:
    """Check the aggregated rows, fix dtypes and sort (pure pandas on the small result)."""
    raw = raw.copy()
    for col in ("n_event", "n_censor", "n_rows"):
        raw[col] = raw[col].fillna(0).astype(np.int64)
    bad_event = int((raw["n_rows"] - raw["n_event"] - raw["n_censor"]).sum())
    if bad_event:
        raise ValueError(
            f"event column {event_name!r} must be boolean or coded 0/1 (1 = event, 0 = censored); "
            f"{bad_event} rows have other or missing values"
        )
    times = pd.to_numeric(raw["time"], errors="coerce").astype(np.float64)
    if times.isna().any() or not np.all(np.isfinite(times)):
        raise ValueError(f"time column {time_name!r} contains missing or non-finite values")
    if (times < 0).any():
        raise ValueError(f"time column {time_name!r} contains negative values")
    raw["time"] = times
    for key, name in (("group", group_name), ("strata", strata_name)):
        if key in raw.columns and raw[key].isna().any():
            raise ValueError(f"{key} column {name!r} contains missing values")
    keys = [k for k in ("strata", "group") if k in raw.columns]
    out = raw[[*keys, *COUNT_COLUMNS]]
    return out.sort_values([*keys, "time"], kind="mergesort").reset_index(drop=True)


def counts_from_arrays(
    time: ArrayLike,
    event: ArrayLike,
    group: ArrayLike | None = None,
    strata: ArrayLike | None = None,
) -> pd.DataFrame:
    """Counts frame for in-memory arrays, through the same Ibis aggregation as :func:`event_counts`.

    >>> counts_from_arrays([9, 13, 13], [1, 1, 0])
       time  n_event  n_censor
    0   9.0        1         0
    1  13.0        1         1
    """
    t = check_time("time", as_1d("time", time))
    e = as_1d("event", event)
    named = [("time", t), ("event", e)]
    data: dict[str, np.ndarray] = {"time": t}
    for name, values in (("group", group), ("strata", strata)):
        if values is not None:
            arr = as_1d(name, values)
            named.append((name, arr))
            if pd.isna(arr).any():
                raise ValueError(f"{name} contains missing values")
            data[name] = arr
    n = check_same_length(named)
    if n == 0:
        raise ValueError("time is empty: at least one observation is needed")
    data["event"] = check_event("event", e)
    frame = pd.DataFrame(data)
    return event_counts(
        ibis.memtable(frame),
        "time",
        "event",
        group="group" if group is not None else None,
        strata="strata" if strata is not None else None,
    )


def validate_counts(counts: pd.DataFrame, *, keys: tuple[str, ...] = ()) -> pd.DataFrame:
    """Check a user-supplied counts frame; sum duplicate keys; sort.

    ``keys`` are the key columns required in addition to ``time`` (e.g. ``("group",)``).
    """
    if not isinstance(counts, pd.DataFrame):
        raise TypeError(f"counts must be a pandas DataFrame, got {type(counts).__name__}")
    missing = [c for c in (*keys, *COUNT_COLUMNS) if c not in counts.columns]
    if missing:
        raise ValueError(f"counts is missing the columns {missing}; it needs {[*keys, *COUNT_COLUMNS]}")
    frame = counts[[*keys, *COUNT_COLUMNS]].copy()
    if frame.empty:
        raise ValueError("counts is empty: at least one observation is needed")
    time = pd.to_numeric(frame["time"], errors="coerce").astype(np.float64)
    if time.isna().any() or not np.all(np.isfinite(time)) or (time < 0).any():
        raise ValueError("counts['time'] must be finite, non-negative and not missing")
    frame["time"] = time
    for col in ("n_event", "n_censor"):
        values = pd.to_numeric(frame[col], errors="coerce")
        if values.isna().any() or (values < 0).any() or not np.all(values == np.floor(values)):
            raise ValueError(f"counts[{col!r}] must hold non-negative whole numbers")
        frame[col] = values.astype(np.int64)
    for key in keys:
        if frame[key].isna().any():
            raise ValueError(f"counts[{key!r}] contains missing values")
    frame = frame.groupby([*keys, "time"], sort=True, as_index=False)[["n_event", "n_censor"]].sum()
    frame = frame[(frame["n_event"] + frame["n_censor"]) > 0]
    if frame.empty:
        raise ValueError("counts has no observations (all n_event and n_censor are zero)")
    return frame.reset_index(drop=True)
