"""Vectorised survival kernels (private): event counts, product-limit curves and log-rank sums.

Everything here works on NumPy arrays with sorts, cumulative sums and ``bincount``; the only Python
loops are over groups and strata (a handful), never over times or subjects.

The central object is :class:`Counts`: one row per distinct (stratum, group, time) with the number of
events and censorings, sorted by stratum code, group code and time. Group and stratum labels are
stored once (sorted); the rows carry integer codes into them.

Aggregating raw arrays avoids ``argsort`` (slow on 10^7 floats): within each (stratum, group)
segment the event times and the censoring times are sorted separately with ``np.sort`` and merged by
``searchsorted``, which gives the sorted sequence with its event flags; runs of equal times are then
summed with ``np.add.reduceat``.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "Counts",
    "aggregate_arrays",
    "counts_from_frame",
    "encode_labels",
    "logrank_sums",
    "product_limit",
]


@dataclass(frozen=True, eq=False)
class Counts:
    """Events and censorings per distinct (stratum, group, time), sorted by codes and time."""

    time: np.ndarray  # float64
    n_event: np.ndarray  # int64
    n_censor: np.ndarray  # int64
    group: np.ndarray | None = None  # int64 codes into group_labels
    strata: np.ndarray | None = None  # int64 codes into strata_labels
    group_labels: tuple[Hashable, ...] = ()
    strata_labels: tuple[Hashable, ...] = ()

    def __len__(self) -> int:
        return len(self.time)

    def segments(self, key: np.ndarray | None) -> list[tuple[int, int, int]]:
        """(code, start, stop) of the contiguous runs of a sorted code array (one run if ``key`` is None)."""
        n = len(self.time)
        if key is None or n == 0:
            return [(0, 0, n)] if n else []
        starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
        stops = np.append(starts[1:], n)
        return [(int(key[s]), int(s), int(e)) for s, e in zip(starts, stops, strict=True)]

    def to_frame(self) -> pd.DataFrame:
        """The public counts frame: ``strata``/``group`` labels, ``time``, ``n_event``, ``n_censor``."""
        data: dict[str, object] = {}
        for name, codes, labels in (
            ("strata", self.strata, self.strata_labels),
            ("group", self.group, self.group_labels),
        ):
            if codes is not None:
                data[name] = _labels_array(labels)[codes]
        data["time"] = self.time
        data["n_event"] = self.n_event
        data["n_censor"] = self.n_censor
        return pd.DataFrame(data)


def _labels_array(labels: Sequence[Hashable]) -> np.ndarray:
    """Labels as a NumPy array that keeps their type (numbers stay numbers, strings objects)."""
    arr = pd.Series(list(labels)).to_numpy()
    return arr


def encode_labels(values: np.ndarray) -> tuple[np.ndarray, tuple[Hashable, ...]]:
    """Integer codes into the sorted distinct labels (hash-based; no sort of the full array)."""
    codes, uniques = pd.factorize(values, sort=True)
    labels = tuple(u.item() if isinstance(u, np.generic) else u for u in np.asarray(uniques, dtype=object))
    return codes.astype(np.int64, copy=False), labels


_ONE = np.uint64(1)


def packed(time: np.ndarray, flag: np.ndarray | None = None) -> np.ndarray:
    """Order-preserving uint64 keys of non-negative float times, shifted left to carry one flag bit.

    For non-negative IEEE doubles the bit pattern orders as the value, and the sign bit is 0, so
    ``bits << 1 | flag`` loses nothing: sorting the keys sorts by time, then by flag, and ``np.sort``
    on them is several times faster than ``np.argsort`` on the times.
    """
    key = (np.asarray(time, dtype=np.float64) + 0.0).view(np.uint64)  # + 0.0 turns -0.0 into 0.0
    key = key << _ONE
    if flag is not None:
        key |= flag.astype(np.uint64)
    return key


def unpack(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Times (as their uint64 bit patterns) and flags of packed keys."""
    return key >> _ONE, (key & _ONE).astype(bool)


def merge_sorted(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable merge of two sorted time arrays; returns the merged times and a from-``b`` mask."""
    key = np.concatenate((packed(a), packed(b, np.ones(len(b), dtype=bool))))
    key.sort()
    bits, from_b = unpack(key)
    return bits.view(np.float64), from_b


def _runs(bits: np.ndarray, censored: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct times of sorted time bit patterns with the number of events and censorings at each."""
    n = len(bits)
    if n == 0:
        return np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate(([True], bits[1:] != bits[:-1])))
    if len(starts) == n:  # no ties: every time is its own run
        n_censor = censored.astype(np.int64)
        return bits.view(np.float64), 1 - n_censor, n_censor
    total = np.diff(np.append(starts, n))
    n_censor = np.add.reduceat(censored.view(np.int8), starts, dtype=np.int64)
    return bits[starts].view(np.float64), total - n_censor, n_censor


def aggregate_arrays(
    time: np.ndarray,
    event: np.ndarray,
    group: np.ndarray | None = None,
    strata: np.ndarray | None = None,
) -> Counts:
    """Counts from per-subject arrays (already checked: finite non-negative times, 0/1 events).

    ``group``/``strata`` are raw labels (any hashable); they are encoded to sorted codes here.
    """
    time = np.asarray(time, dtype=np.float64)
    is_event = np.asarray(event).astype(bool, copy=False)
    g_codes = s_codes = None
    g_labels: tuple[Hashable, ...] = ()
    s_labels: tuple[Hashable, ...] = ()
    k = 1
    key: np.ndarray | None = None
    if group is not None:
        g_codes, g_labels = encode_labels(np.asarray(group))
        k = max(len(g_labels), 1)
        key = g_codes
    if strata is not None:
        s_codes, s_labels = encode_labels(np.asarray(strata))
        key = s_codes * k + (g_codes if g_codes is not None else 0)
    pieces: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    if key is None:
        parts = [(0, time, is_event)]
    else:
        n_keys = int(key.max()) + 1 if len(key) else 0
        if n_keys <= 8:
            parts = [(c, time[key == c], is_event[key == c]) for c in range(n_keys)]
        else:  # many segments: one stable (radix for small ints) sort by key, then slices
            small = key.astype(np.uint16) if n_keys < 2**16 else key
            order = np.argsort(small, kind="stable")
            sorted_key = key[order]
            bounds = np.searchsorted(sorted_key, np.arange(n_keys + 1))
            t_o, e_o = time[order], is_event[order]
            parts = [
                (c, t_o[bounds[c] : bounds[c + 1]], e_o[bounds[c] : bounds[c + 1]]) for c in range(n_keys)
            ]
    for code, t, e in parts:
        if len(t) == 0:
            continue
        key = packed(t, ~e)  # events sort before censorings at the same time (R's convention)
        del t, e
        key.sort()
        bits, censored = unpack(key)
        del key
        pieces.append((code, *_runs(bits, censored)))
    return _assemble(pieces, g_codes is not None, s_codes is not None, k, g_labels, s_labels)


def _assemble(
    pieces: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
    has_group: bool,
    has_strata: bool,
    k: int,
    g_labels: tuple[Hashable, ...],
    s_labels: tuple[Hashable, ...],
) -> Counts:
    if not pieces:
        empty = np.zeros(0, np.int64)
        return Counts(
            np.zeros(0),
            empty,
            empty,
            empty if has_group else None,
            empty if has_strata else None,
            g_labels,
            s_labels,
        )
    lengths = [len(p[1]) for p in pieces]
    codes = np.repeat(np.array([p[0] for p in pieces], dtype=np.int64), lengths)
    group = strata = None
    if has_group and not has_strata:
        group = codes
    elif has_strata and not has_group:
        strata = codes
    elif has_group and has_strata:
        group, strata = codes % k, codes // k
    if len(pieces) == 1:
        time, d, c = pieces[0][1], pieces[0][2], pieces[0][3]
    else:
        time = np.concatenate([p[1] for p in pieces])
        d = np.concatenate([p[2] for p in pieces])
        c = np.concatenate([p[3] for p in pieces])
    return Counts(
        time=time,
        n_event=d,
        n_censor=c,
        group=group,
        strata=strata,
        group_labels=g_labels,
        strata_labels=s_labels,
    )


def _codes_of_column(values: np.ndarray) -> tuple[np.ndarray, tuple[Hashable, ...], bool]:
    """Codes of a key column; cheap when the column is already grouped in sorted label order."""
    n = len(values)
    change = np.concatenate(([True], values[1:] != values[:-1])) if n else np.zeros(0, bool)
    starts = np.flatnonzero(change)
    run_labels = list(values[starts])
    try:
        ordered = all(a < b for a, b in itertools.pairwise(run_labels))
    except TypeError:
        ordered = False
    if ordered:
        codes = np.cumsum(change, dtype=np.int64) - 1
        labels = tuple(v.item() if isinstance(v, np.generic) else v for v in run_labels)
        return codes, labels, True
    codes, labels = encode_labels(values)
    return codes, labels, False


def counts_from_frame(frame: Mapping[str, Any], keys: tuple[str, ...]) -> Counts:
    """Counts from a checked counts frame (numeric time/n_event/n_censor, no missing keys).

    Sums duplicate keys, drops rows without observations and sorts, all vectorised; when the frame
    is already sorted with unique keys (as :func:`event_counts` returns it) nothing is copied.
    """
    time = np.asarray(frame["time"], dtype=np.float64)
    d = np.asarray(frame["n_event"], dtype=np.int64)
    c = np.asarray(frame["n_censor"], dtype=np.int64)
    coded: dict[str, tuple[np.ndarray, tuple[Hashable, ...]]] = {}
    for key in keys:
        codes, labels, _ = _codes_of_column(np.asarray(frame[key]))
        coded[key] = codes, labels
    cols = [coded[key][0] for key in keys]
    n = len(time)
    if n > 1:
        # strictly increasing in (keys..., time)?
        same = np.ones(n - 1, dtype=bool)
        increasing = np.zeros(n - 1, dtype=bool)
        for col in [*cols, time]:
            lt = col[:-1] < col[1:]
            eq = col[:-1] == col[1:]
            increasing |= same & lt
            same &= eq
        in_order = bool(increasing.all())
    else:
        in_order = True
    if not in_order:
        order = np.lexsort((time, *reversed(cols)))
        time, d, c = time[order], d[order], c[order]
        cols = [col[order] for col in cols]
        new = np.ones(n, dtype=bool)
        new[1:] = time[1:] != time[:-1]
        for col in cols:
            new[1:] |= col[1:] != col[:-1]
        starts = np.flatnonzero(new)
        time = time[starts]
        d = np.add.reduceat(d, starts)
        c = np.add.reduceat(c, starts)
        cols = [col[starts] for col in cols]
    keep = (d + c) > 0
    if not keep.all():
        time, d, c = time[keep], d[keep], c[keep]
        cols = [col[keep] for col in cols]
    named = dict(zip(keys, cols, strict=True))
    return Counts(
        time=time,
        n_event=d,
        n_censor=c,
        group=named.get("group"),
        strata=named.get("strata"),
        group_labels=coded["group"][1] if "group" in coded else (),
        strata_labels=coded["strata"][1] if "strata" in coded else (),
    )


# ---------------------------------------------------------------------------------------------
# Product-limit and log-rank kernels
# ---------------------------------------------------------------------------------------------
def product_limit(n_event: np.ndarray, n_censor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Number at risk, survival and ``sqrt(Greenwood sum)`` (the se of -log S) at each time.

    Inputs are the counts at the sorted distinct times of one curve.
    """
    total = n_event + n_censor
    n_risk = np.cumsum(total[::-1])[::-1].astype(np.float64)
    d = n_event.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(1.0 - d / n_risk)
        term = d / (n_risk * (n_risk - d))  # +inf where n == d, NaN where d = 0 = n - d
    term[n_event == 0] = 0.0
    se_log = np.sqrt(np.cumsum(term, out=term), out=term)
    return n_risk, surv, se_log


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of products without BLAS (``np.dot`` calls BLAS threads, slow on a busy machine)."""
    return float(np.multiply(a, b).sum())


def logrank_sums(
    counts: Counts, rows: slice, n_groups: int, weights: str, rho: float, gamma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted observed, expected and covariance of one stratum (rows ``rows`` of ``counts``).

    R's ``survdiff2``: at each pooled event time ``t`` with ``D`` events among ``N`` at risk,
    ``E_j += w D n_j / N`` and ``V_jk += w^2 D (N - D) / (N (N - 1)) n_j (delta_jk - n_k / N)``.
    """
    time = counts.time[rows]
    d = counts.n_event[rows]
    c = counts.n_censor[rows]
    g = counts.group[rows] if counts.group is not None else np.zeros(len(time), np.int64)
    observed = np.zeros(n_groups)
    expected = np.zeros(n_groups)
    variance = np.zeros((n_groups, n_groups))
    if len(time) == 0:
        return observed, expected, variance
    # pool the per-group sorted runs by stable merges (packed-key sorts, no argsort, no searchsorted)
    bounds = np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1], [True])))
    codes = [int(g[b]) for b in bounds[:-1]]
    p_time, p_d, p_c = time[: bounds[1]], d[: bounds[1]], c[: bounds[1]]
    p_g: np.ndarray | None = None if len(codes) <= 2 else g[: bounds[1]]
    first_mask: np.ndarray | None = None  # rows of the first group, when there are two
    for s, e in itertools.pairwise(bounds[1:]):
        merged, from_b = merge_sorted(p_time, time[s:e])
        from_a = ~from_b
        pairs = [(p_d, d[s:e]), (p_c, c[s:e])] + ([(p_g, g[s:e])] if p_g is not None else [])
        parts = []
        for old, new in pairs:
            out = np.empty(len(merged), dtype=old.dtype)
            out[from_a] = old
            out[from_b] = new
            parts.append(out)
        p_time, p_d, p_c = merged, parts[0], parts[1]
        if p_g is not None:
            p_g = parts[2]
        first_mask = from_a
    starts = np.flatnonzero(np.concatenate(([True], p_time[1:] != p_time[:-1])))
    ties = len(starts) < len(p_time)
    del p_time

    def per_time(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, starts) if ties else values

    def at_risk(values: np.ndarray) -> np.ndarray:
        return np.cumsum(values[::-1], dtype=np.float64)[::-1]

    big_d = per_time(p_d).astype(np.float64)
    big_n = at_risk(per_time(p_d) + per_time(p_c))
    per_group: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for j in codes[:1] if len(codes) == 2 else codes:
        mine = first_mask if len(codes) == 2 else (p_g == j if p_g is not None else None)
        if mine is None:  # a single group
            per_group[j] = big_d, big_n
            continue
        d_j = per_time(np.where(mine, p_d, 0)).astype(np.float64)
        n_j = at_risk(per_time(np.where(mine, p_d + p_c, 0)))
        per_group[j] = d_j, n_j
    if len(codes) == 2:  # the second group is what the first leaves
        d_0, n_0 = per_group[codes[0]]
        per_group[codes[1]] = big_d - d_0, big_n - n_0
    del p_d, p_c, p_g
    # rows without events contribute nothing below (D = 0), so no need to select event times
    if weights == "logrank":
        w = None
    elif weights == "gehan-breslow":
        w = big_n
    else:
        km_left = np.concatenate(([1.0], np.cumprod(1.0 - big_d / big_n)[:-1]))  # S(t-), pooled
        w = km_left**rho * (1.0 - km_left) ** gamma
    with np.errstate(divide="ignore", invalid="ignore"):
        ww = 1.0 if w is None else w * w
        factor = ww * big_d * (big_n - big_d) / (big_n * (big_n - 1))
        factor[big_n <= 1] = 0.0
        rate = big_d / big_n if w is None else w * big_d / big_n
    f_over_n = factor / big_n
    for j, (d_j, n_j) in per_group.items():
        observed[j] = float(d_j.sum()) if w is None else _dot(w, d_j)
        expected[j] = _dot(rate, n_j)
        variance[j, j] += _dot(factor, n_j)
        weighted = f_over_n * n_j
        for k2, (_, n_k) in per_group.items():
            variance[j, k2] -= _dot(weighted, n_k)
    return observed, expected, variance
