"""Vectorised survival kernels (private): event counts, product-limit curves and log-rank sums.

Everything here works on NumPy arrays with sorts, cumulative sums and ``bincount``; the only Python
loops are over groups and strata (a handful), never over times or subjects.

The central object is :class:`Counts`: one row per distinct (stratum, group, time) with the number of
events and censorings, sorted by stratum code, group code and time. Group and stratum labels are
stored once (sorted); the rows carry integer codes into them.

Aggregating raw arrays avoids ``argsort`` (slow on 10^7 floats): every (stratum, group) segment
is written into one uint64 buffer as order-preserving keys (the time's bits shifted left, the
censoring flag in the freed lowest bit, so events sort before censorings at equal times), each
segment is sorted in place with ``np.sort``, and runs of equal times are summed with
``np.add.reduceat``. Batches streamed from an engine go through :class:`StreamAggregator`, which
writes them into the same buffer.

Full-length temporaries cost page faults (about 0.3-0.5 ms per MB on the benchmark machine, more
for memory never touched before), so the kernels that would need many of them (the two-group
log-rank sums, the product-limit pass, the order checks) work in cache-sized blocks with carries.
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
    "StreamAggregator",
    "aggregate_arrays",
    "counts_from_frame",
    "encode_labels",
    "encode_labels_counted",
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
        """(code, start, stop) of the contiguous runs of a code array (one run if ``key`` is None).

        The rows are sorted by stratum, then group: the strata codes, and the group codes when
        there are no strata, are non-decreasing, and their runs are found by binary search.
        """
        n = len(self.time)
        if key is None or n == 0:
            return [(0, 0, n)] if n else []
        if key is self.strata or (key is self.group and self.strata is None):
            return sorted_runs(key)
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
                # labels 0..k-1 (integer codes already) are their own column: no copy
                own = all(type(v) is int for v in labels) and labels == tuple(range(len(labels)))
                data[name] = codes if own else _labels_array(labels)[codes]
        data["time"] = self.time
        data["n_event"] = self.n_event
        data["n_censor"] = self.n_censor
        return pd.DataFrame(data, copy=False)  # no block consolidation: the arrays are not copied


def sorted_runs(key: np.ndarray) -> list[tuple[int, int, int]]:
    """(code, start, stop) of the runs of a non-decreasing code array, by binary search (no pass
    over the array: a handful of groups among millions of rows)."""
    runs = []
    start, n = 0, len(key)
    while start < n:
        code = int(key[start])
        stop = int(np.searchsorted(key, code, side="right"))
        runs.append((code, start, stop))
        start = stop
    return runs


def _labels_array(labels: Sequence[Hashable]) -> np.ndarray:
    """Labels as a NumPy array that keeps their type (numbers stay numbers, strings objects)."""
    arr = pd.Series(list(labels)).to_numpy()
    return arr


def encode_labels(values: np.ndarray) -> tuple[np.ndarray, tuple[Hashable, ...]]:
    """Integer codes into the sorted distinct labels (no sort of the full array).

    Integers in a small range (arm codes, 0/1) are counted with ``bincount``; other labels are
    hashed (``pandas.factorize``). When the labels are already 0..k-1 the array is its own code.
    """
    codes, labels, _ = encode_labels_counted(values)
    return codes, labels


def encode_labels_counted(values: np.ndarray) -> tuple[np.ndarray, tuple[Hashable, ...], list[int]]:
    """:func:`encode_labels` and the number of rows with each label (from the same ``bincount``)."""
    if values.dtype.kind in "iu" and len(values):
        lo, hi = int(values.min()), int(values.max())
        if hi - lo < 2**16:
            shifted = values if lo == 0 else values - lo
            per_value = np.bincount(shifted, minlength=hi - lo + 1)
            present = np.flatnonzero(per_value)
            labels_i = tuple(int(v) + lo for v in present)
            sizes = per_value[present].tolist()
            if len(present) == hi - lo + 1:
                return shifted.astype(np.int64, copy=False), labels_i, sizes
            remap = np.zeros(hi - lo + 1, dtype=np.int64)
            remap[present] = np.arange(len(present))
            return remap[shifted], labels_i, sizes
    codes, uniques = pd.factorize(values, sort=True)
    labels = tuple(u.item() if isinstance(u, np.generic) else u for u in np.asarray(uniques, dtype=object))
    sizes = np.bincount(codes, minlength=len(labels)).tolist() if len(labels) else []
    return codes.astype(np.int64, copy=False), labels, sizes


_ONE = np.uint64(1)


def _pack_segment(seg: np.ndarray, censored: np.ndarray) -> None:
    """In place: float times already written into ``seg`` (a uint64 view) become packed keys."""
    seg <<= _ONE  # the sign bit (set only for -0.0 in checked times) falls off: -0.0 becomes 0.0
    seg |= censored  # events sort before censorings at the same time (R's convention)


#: Whole-number times are counted with one ``bincount`` instead of a sort when the histogram (two
#: cells, event and censoring, per time and segment) has at most this many cells or four per row.
WHOLE_CELLS_MIN: int = 1 << 16


def whole_histogram(
    time: np.ndarray,
    censored: np.ndarray,
    key: np.ndarray | None,
    n_keys: int,
    top: float | None = None,
) -> np.ndarray | None:
    """Events and censorings per (whole-number time, segment) as one ``bincount``; None otherwise.

    ``time`` is checked (finite, >= 0; ``top`` its maximum when known), ``censored`` 0/1 (bool or
    uint8), ``key`` the segment code of each row (``0 <= key < n_keys``; None for one segment).
    Returns an int64 array of shape ``(max time + 1, n_keys, 2)`` (last axis: events, censorings)
    when every time is a whole number and the histogram is small (days, weeks, months as
    integers); None for other times, which a look at the first rows usually tells.
    """
    n = len(time)
    if n == 0:
        return None
    if time.dtype.kind == "f":
        head = time[:1024]
        if not np.array_equal(head, np.floor(head)):
            return None
    span = int(time.max() if top is None else top) + 1
    cells = span * n_keys * 2
    if cells > max(WHOLE_CELLS_MIN, 4 * n):
        return None
    cell = time.astype(np.int64)
    if time.dtype.kind == "f" and not np.equal(cell, time).all():
        return None
    # cell = time * 2 k + key * 2 + censored; the small part on one-byte (or key-sized) arrays
    if key is not None and n_keys > 1:
        low = key.astype(np.uint8 if n_keys <= 128 else np.int64)  # a copy: the key is kept
        low <<= 1
        low |= censored
    else:
        low = censored
    cell *= 2 * n_keys
    cell += low
    return np.bincount(cell, minlength=cells).reshape(span, n_keys, 2)


def histogram_pieces(
    hist: np.ndarray, codes: Sequence[int]
) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """(code, times, events, censorings) of each non-empty segment of a :func:`whole_histogram`.

    ``codes[j]`` is the combined code (``stratum * k + group``) of the histogram's segment ``j``.
    """
    pieces = []
    for j, code in enumerate(codes):
        seg = hist[:, j, :]
        rows = np.flatnonzero(seg.any(axis=1))
        if len(rows):
            pieces.append((code, rows.astype(np.float64), seg[rows, 0], seg[rows, 1]))
    return pieces


def aggregate_arrays(
    time: np.ndarray,
    event: np.ndarray,
    group: np.ndarray | None = None,
    strata: np.ndarray | None = None,
) -> Counts:
    """Counts from per-subject arrays (already checked: finite non-negative times, 0/1 events).

    ``group``/``strata`` are raw labels (any hashable); they are encoded to sorted codes here.
    All segments (one per stratum x group) are packed into one uint64 buffer, each sorted in
    place; the distinct times are then found in one pass over the whole buffer.
    """
    time = np.asarray(time, dtype=np.float64)
    censored = np.equal(event, 0)  # one temporary (bool or 0/1 events)
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
    n = len(time)
    if n == 0:
        return _assemble([], g_codes is not None, s_codes is not None, k, g_labels, s_labels)
    n_keys = 1 if key is None else int(key.max()) + 1
    hist = whole_histogram(time, censored, key, n_keys)
    if hist is not None:  # whole-number times (days): one bincount, no sort
        pieces = histogram_pieces(hist, list(range(n_keys)))
        return _assemble(pieces, g_codes is not None, s_codes is not None, k, g_labels, s_labels)
    buffer = np.empty(n, dtype=np.uint64)
    seg_codes: list[int] = []
    seg_sizes: list[int] = []
    if key is None:
        np.copyto(buffer.view(np.float64), time)
        _pack_segment(buffer, censored)
        seg_codes, seg_sizes = [0], [n]
    else:
        if n_keys <= 8:
            off = 0
            for c in range(n_keys):
                mine = key == c
                size = int(np.count_nonzero(mine))
                if size == 0:
                    continue
                seg = buffer[off : off + size]
                np.compress(mine, time, out=seg.view(np.float64))
                _pack_segment(seg, np.compress(mine, censored))
                seg_codes.append(c)
                seg_sizes.append(size)
                off += size
        else:  # many segments: one stable (radix for small ints) sort by key, then slices
            small = key.astype(np.uint16) if n_keys < 2**16 else key
            order = np.argsort(small, kind="stable")
            sizes = np.bincount(key, minlength=n_keys)
            np.take(time, order, out=buffer.view(np.float64))
            _pack_segment(buffer, censored[order])
            del order
            seg_codes = [int(c) for c in np.flatnonzero(sizes)]
            seg_sizes = [int(sizes[c]) for c in seg_codes]
    return _runs_of_sorted_segments(
        buffer, seg_codes, seg_sizes, k, g_codes is not None, s_codes is not None, g_labels, s_labels
    )


class StreamAggregator:
    """Counts from batches streamed out of an engine (identical to :func:`aggregate_arrays`).

    :meth:`add` keeps each checked batch (float times, 0/1 censoring flags, the codes of its
    (stratum, group) labels) and counts its rows per label; :meth:`finish` then knows every
    segment's size and writes each batch's rows straight into their segment of one packed buffer
    (no intermediate copies), frees the batches and counts the runs.
    """

    def __init__(self, has_group: bool, has_strata: bool, *, keep: bool = True) -> None:
        self.has_group = has_group
        self.has_strata = has_strata
        # keep=False: whole-number times only (the batches are not kept; see :attr:`whole`)
        self.keep = keep
        self.batches: list[
            tuple[np.ndarray, np.ndarray, np.ndarray | None, list[tuple[Hashable, Hashable]]]
        ] = []
        self.sizes: dict[tuple[Hashable, Hashable], int] = {}
        self.n = 0
        # whole-number times so far: (time, censored) histograms per label (None once a batch is not)
        self.hists: dict[tuple[Hashable, Hashable], np.ndarray] | None = {}

    def add(
        self,
        time: np.ndarray,
        censored: np.ndarray,
        group: np.ndarray | None = None,
        strata: np.ndarray | None = None,
        top: float | None = None,
    ) -> None:
        """One batch: float64 times (finite, >= 0; ``top`` their maximum when known), censoring
        flags 0/1 (uint8 or bool), labels."""
        n = len(time)
        if n == 0:
            return
        self.n += n
        none: tuple[None, tuple[None], list[int]] = (None, (None,), [n])
        g_codes, g_labels, g_sizes = encode_labels_counted(group) if group is not None else none
        s_codes, s_labels, _ = encode_labels_counted(strata) if strata is not None else none
        k = len(g_labels)
        labels = [(s, g) for s in s_labels for g in g_labels]  # local code = stratum * k + group
        if len(labels) == 1:
            key = None
            counts = [n]
        elif s_codes is None:
            key, counts = g_codes, g_sizes
        else:
            key = s_codes * k + (0 if g_codes is None else g_codes)
            counts = np.bincount(key, minlength=len(labels)).tolist()
        if key is not None and len(labels) <= 256:  # one byte a row is kept, not the labels
            key = key.astype(np.uint8)
        for label, size in zip(labels, counts, strict=True):
            if size:
                self.sizes[label] = self.sizes.get(label, 0) + size
        if self.keep:
            self.batches.append((time, censored, key, labels))
        if self.hists is not None:
            self._add_histogram(time, censored, key, labels, top)

    @property
    def whole(self) -> bool:
        """Every time added so far is a whole number (the histograms hold the counts)."""
        return self.hists is not None

    def _add_histogram(
        self,
        time: np.ndarray,
        censored: np.ndarray,
        key: np.ndarray | None,
        labels: list[tuple[Hashable, Hashable]],
        top: float | None,
    ) -> None:
        """Add the batch to the per-label histograms, or drop them when its times are not whole."""
        hist = whole_histogram(time, censored, key, len(labels), top)
        if hist is None or self.hists is None:
            self.hists = None
            return
        for j, label in enumerate(labels):
            part = hist[:, j, :]
            have = self.hists.get(label)
            if have is None:
                self.hists[label] = part.copy()
            elif len(have) >= len(part):
                have[: len(part)] += part
            else:
                grown = part.copy()
                grown[: len(have)] += have
                self.hists[label] = grown

    def finish(self) -> Counts:
        """The counts of everything added (sorted labels; empty counts when nothing was added)."""
        g_labels: tuple[Hashable, ...] = ()
        s_labels: tuple[Hashable, ...] = ()
        g_rank = s_rank = {None: 0}
        if self.has_group:
            g_labels = _sorted_labels({g for _, g in self.sizes})
            g_rank = {v: i for i, v in enumerate(g_labels)}
        if self.has_strata:
            s_labels = _sorted_labels({s for s, _ in self.sizes})
            s_rank = {v: i for i, v in enumerate(s_labels)}
        k = max(len(g_labels), 1)
        if self.n == 0:
            return _assemble([], self.has_group, self.has_strata, k, g_labels, s_labels)
        segments = sorted((s_rank[s] * k + g_rank[g], (s, g)) for s, g in self.sizes)
        if self.hists is None and not self.keep:
            raise ValueError("times that are not whole numbers were added to a keep=False aggregator")
        if self.hists is not None:  # whole-number times: the histograms are the counts
            self.batches.clear()
            pieces = []
            for code, label in segments:
                hist = self.hists[label]
                pieces += histogram_pieces(hist.reshape(len(hist), 1, 2), [code])
            return _assemble(pieces, self.has_group, self.has_strata, k, g_labels, s_labels)
        cursor: dict[tuple[Hashable, Hashable], int] = {}
        off = 0
        for _, label in segments:
            cursor[label] = off
            off += self.sizes[label]
        buffer = np.empty(self.n, dtype=np.uint64)
        while self.batches:
            time, censored, key, labels = self.batches.pop(0)
            if key is None:
                pieces = [(labels[0], None, len(time))]
            elif len(labels) <= 8:
                masks = [(label, key == c) for c, label in enumerate(labels)]
                pieces = [(label, m, int(np.count_nonzero(m))) for label, m in masks]
            else:
                small = key.astype(np.uint16) if key.dtype.itemsize > 2 and len(labels) < 2**16 else key
                order = np.argsort(small, kind="stable")
                bounds = np.cumsum([0, *np.bincount(key, minlength=len(labels)).tolist()])
                pieces = [
                    (label, order[lo:hi], hi - lo)
                    for label, lo, hi in zip(labels, bounds[:-1], bounds[1:], strict=True)
                ]
            for label, rows, size in pieces:
                if not size:
                    continue
                pos = cursor[label]
                seg = buffer[pos : pos + size]
                times = seg.view(np.float64)
                if rows is None:
                    np.copyto(times, time)
                    flags = censored
                elif rows.dtype == bool:
                    np.compress(rows, time, out=times)
                    flags = np.compress(rows, censored)
                else:
                    np.take(time, rows, out=times)
                    flags = censored.take(rows)
                seg <<= _ONE  # the sign bit falls off: -0.0 (the only signed checked time) is 0.0
                seg |= flags
                cursor[label] = pos + size
            del pieces
        seg_codes = [code for code, _ in segments]
        seg_sizes = [self.sizes[label] for _, label in segments]
        return _runs_of_sorted_segments(
            buffer, seg_codes, seg_sizes, k, self.has_group, self.has_strata, g_labels, s_labels
        )


def _sorted_labels(labels: set[Hashable]) -> tuple[Hashable, ...]:
    """Distinct labels in the order :func:`encode_labels` gives them."""
    return encode_labels(np.asarray(list(labels)))[1]


def _runs_of_sorted_segments(
    buffer: np.ndarray,
    seg_codes: list[int],
    seg_sizes: list[int],
    k: int,
    has_group: bool,
    has_strata: bool,
    g_labels: tuple[Hashable, ...],
    s_labels: tuple[Hashable, ...],
) -> Counts:
    """Counts from a buffer of packed keys laid out segment after segment (each sorted here, in place).

    ``seg_codes`` are the combined codes ``stratum * k + group`` of the segments, in order.
    """
    n = len(buffer)
    bounds = np.cumsum([0, *seg_sizes])
    for lo, hi in itertools.pairwise(bounds):
        buffer[lo:hi].sort()  # in place: no index array, no copy
    n_censor = (buffer & _ONE).view(np.int64)
    buffer >>= _ONE  # the times' bit patterns
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(buffer[1:], buffer[:-1], out=new[1:])
    new[bounds[:-1]] = True  # a run never spans two segments
    if new.all():  # no ties: every subject is its own row
        n_event = np.subtract(1, n_censor, out=np.empty_like(n_censor))
        time_out = buffer.view(np.float64)
        runs_per_segment = seg_sizes
    else:
        starts = np.flatnonzero(new)
        del new
        n_censor = np.add.reduceat(n_censor, starts)
        n_event = np.diff(np.append(starts, n)) - n_censor
        time_out = buffer[starts].view(np.float64)
        del buffer
        runs_per_segment = np.diff(np.append(np.searchsorted(starts, bounds[:-1]), len(starts))).tolist()
    codes = np.repeat(np.array(seg_codes, dtype=np.int64), runs_per_segment)
    group, strata = _split_codes(codes, k, has_group, has_strata)
    return Counts(
        time=time_out,
        n_event=n_event,
        n_censor=n_censor,
        group=group,
        strata=strata,
        group_labels=g_labels,
        strata_labels=s_labels,
    )


def _split_codes(
    codes: np.ndarray, k: int, has_group: bool, has_strata: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Group and stratum codes from combined segment codes ``stratum * k + group``."""
    if has_group and has_strata:
        return codes % k, codes // k
    return (codes if has_group else None), (codes if has_strata else None)


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


def _codes_of_column(values: np.ndarray) -> tuple[np.ndarray, tuple[Hashable, ...], np.ndarray]:
    """Codes of a key column and where its value changes; cheap when it is already grouped in order."""
    n = len(values)
    change = np.empty(n, dtype=bool)
    if n:
        change[0] = True
        np.not_equal(values[1:], values[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    run_labels = list(values[starts])
    try:
        ordered = all(a < b for a, b in itertools.pairwise(run_labels))
    except TypeError:
        ordered = False
    if ordered and values.dtype.kind in "iu" and run_labels == list(range(len(run_labels))):
        return values.astype(np.int64, copy=False), tuple(range(len(run_labels))), change
    if ordered:
        codes = np.cumsum(change, dtype=np.int64)
        codes -= 1
        labels = tuple(v.item() if isinstance(v, np.generic) else v for v in run_labels)
        return codes, labels, change
    codes, labels = encode_labels(values)
    return codes, labels, change


#: Rows per block in the order checks (block temporaries stay in the CPU cache and are reused).
CHECK_BLOCK: int = 1 << 16


def _sorted_unique_rows(time: np.ndarray, cols: list[np.ndarray], changes: list[np.ndarray]) -> bool:
    """Rows strictly increasing in (codes..., time), checked without full-length temporaries.

    Between runs of equal codes the code tuples must increase; within a run, the times.
    """
    n = len(time)
    if n <= 1:
        return True
    if cols:
        change = changes[0] if len(changes) == 1 else np.logical_or.reduce(changes)
        starts = np.flatnonzero(change)[1:]
        if len(starts):  # code tuples of consecutive runs, lexicographically increasing
            same = np.ones(len(starts), dtype=bool)
            increasing = np.zeros(len(starts), dtype=bool)
            for col in cols:
                prev, cur = col[starts - 1], col[starts]
                increasing |= same & (prev < cur)
                same &= prev == cur
            if not increasing.all():
                return False
    else:
        change = None
    buf = np.empty(min(n - 1, CHECK_BLOCK), dtype=bool)
    for lo in range(0, n - 1, CHECK_BLOCK):
        hi = min(lo + CHECK_BLOCK, n - 1)
        ok = np.greater(time[lo + 1 : hi + 1], time[lo:hi], out=buf[: hi - lo])
        if change is not None:
            ok |= change[lo + 1 : hi + 1]  # a new run may start at any time
        if not ok.all():
            return False
    return True


def _has_empty_rows(d: np.ndarray, c: np.ndarray) -> bool:
    """Any row with neither events nor censorings (non-negative counts), block by block."""
    buf = np.empty(min(len(d), CHECK_BLOCK), dtype=np.result_type(d, c))
    for lo in range(0, len(d), CHECK_BLOCK):
        hi = min(lo + CHECK_BLOCK, len(d))
        total = np.add(d[lo:hi], c[lo:hi], out=buf[: hi - lo])
        if np.count_nonzero(total) < hi - lo:
            return True
    return False


def counts_from_frame(frame: Mapping[str, Any], keys: tuple[str, ...]) -> Counts:
    """Counts from a checked counts frame (numeric time/n_event/n_censor, no missing keys).

    Sums duplicate keys, drops rows without observations and sorts, all vectorised; when the frame
    is already sorted with unique keys (as :func:`event_counts` returns it) nothing is copied.
    """
    time = np.asarray(frame["time"], dtype=np.float64)
    d = np.asarray(frame["n_event"], dtype=np.int64)
    c = np.asarray(frame["n_censor"], dtype=np.int64)
    coded: dict[str, tuple[np.ndarray, tuple[Hashable, ...]]] = {}
    changes = []
    for key in keys:
        codes, labels, change = _codes_of_column(np.asarray(frame[key]))
        coded[key] = codes, labels
        changes.append(change)
    cols = [coded[key][0] for key in keys]
    n = len(time)
    in_order = _sorted_unique_rows(time, cols, changes)
    del changes
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
    if _has_empty_rows(d, c):
        keep = (d != 0) | (c != 0)
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
def reverse_cumsum(values: np.ndarray) -> np.ndarray:
    """``out[i] = values[i:].sum()`` as float64, written contiguously (no reversed copy)."""
    out = np.empty(len(values), dtype=np.float64)
    np.cumsum(values[::-1], dtype=np.float64, out=out[::-1])
    return out


#: Rows per block of the product-limit pass (the block's temporaries stay in the CPU cache).
KM_BLOCK: int = 1 << 15


def product_limit(n_event: np.ndarray, n_censor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Survival and ``sqrt(Greenwood sum)`` (the se of -log S) at each time, block by block.

    Inputs are the counts at the sorted distinct times of one curve. One forward pass in blocks of
    ``KM_BLOCK`` rows: the number at risk is the total minus the rows before (exact in float64), S
    continues the running product (the block's first factor is multiplied by S so far, so every
    product is formed in the same order as one ``cumprod`` over the whole curve: identical values)
    and the Greenwood sum continues the running sum the same way. Only the two outputs are
    full-length; the number at risk is not kept (see :func:`number_at_risk`).
    """
    m = len(n_event)
    surv = np.empty(m, dtype=np.float64)
    se_log = np.empty(m, dtype=np.float64)
    remaining = float(n_event.sum()) + float(n_censor.sum())  # at risk at the first time
    s_so_far, g_so_far = 1.0, 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        for lo in range(0, m, KM_BLOCK):
            hi = min(lo + KM_BLOCK, m)
            d = n_event[lo:hi]
            total = np.add(d, n_censor[lo:hi], dtype=np.float64)
            n = np.cumsum(total)
            n -= total
            np.subtract(remaining, n, out=n)  # at risk at each time of the block
            remaining = float(n[-1] - total[-1])
            s = surv[lo:hi]
            np.divide(d, n, out=s)
            np.subtract(1.0, s, out=s)
            s[0] *= s_so_far
            np.cumprod(s, out=s)
            s_so_far = float(s[-1])
            g = se_log[lo:hi]
            np.subtract(n, d, out=g)
            g *= n
            np.divide(d, g, out=g)  # +inf where n == d; 0 where d = 0 (n >= 1 there)
            if n[-1] == 0:  # rows with nobody at risk (never in checked counts)
                g[n == 0] = 0.0
            g[0] += g_so_far
            np.cumsum(g, out=g)
            g_so_far = float(g[-1])
            np.sqrt(g, out=g)
    return surv, se_log


def number_at_risk(n_event: np.ndarray, n_censor: np.ndarray) -> np.ndarray:
    """Number at risk at each sorted distinct time of one curve (float64, exact)."""
    return reverse_cumsum(np.add(n_event, n_censor))


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of products without BLAS (``np.dot`` calls BLAS threads, slow on a busy machine)."""
    return float(np.multiply(a, b).sum())


#: Rows of each group per block of the two-group log-rank kernel: the block's temporaries stay in
#: the CPU cache and are reused, instead of a dozen fresh full-length arrays (page faults).
LOGRANK_BLOCK: int = 1 << 15


def _two_group_logrank(
    time: np.ndarray, d: np.ndarray, c: np.ndarray, split: int
) -> tuple[float, float, float]:
    """Observed and expected events of the first group and the variance, for two groups.

    Rows ``[:split]`` (first group) and ``[split:]`` are each sorted by time. With ``n_0`` at risk
    in the first group, ``N`` in all and ``D`` events at a pooled time: ``E_0 = sum D n_0 / N`` and
    ``V = sum D (N - D) / (N (N - 1)) * n_0 (N - n_0) / N``; the second group's values follow
    (``E_1 = sum D - E_0``, ``V_01 = -V``).

    The pooled times are cut into blocks at every ``LOGRANK_BLOCK``-th time of either group (so
    equal times never straddle two blocks, and a block holds at most that many rows of each group);
    blocks are merged (a stable ``argsort`` of two sorted runs) and summed from the last to the
    first, carrying the numbers at risk. No full-length temporary is made.
    """
    a, b = time[:split], time[split:]
    step = LOGRANK_BLOCK
    cuts = np.union1d(a[::step], b[::step])
    ia = np.append(np.searchsorted(a, cuts), split).tolist()
    ib = (np.append(np.searchsorted(b, cuts), len(b)) + split).tolist()
    n_carry = n0_carry = 0.0
    expected_0 = var = 0.0
    for k in range(len(cuts) - 1, -1, -1):
        a0, a1, b0, b1 = ia[k], ia[k + 1], ib[k], ib[k + 1]
        na = a1 - a0
        if na and b1 > b0:
            t_blk = np.concatenate((time[a0:a1], time[b0:b1]))
            order = np.argsort(t_blk, kind="stable")  # timsort: a linear merge of the two runs
            t_blk = t_blk.take(order)
            p_d = np.concatenate((d[a0:a1], d[b0:b1]), dtype=np.float64).take(order)
            p_total = np.concatenate((c[a0:a1], c[b0:b1]), dtype=np.float64).take(order)
            p_total += p_d
            own = np.multiply(p_total, order < na)
            same = t_blk[1:] == t_blk[:-1]
            if same.any():  # times shared by the two groups: one row per pooled time
                starts = np.flatnonzero(np.concatenate(([True], ~same)))
                p_d = np.add.reduceat(p_d, starts)
                p_total = np.add.reduceat(p_total, starts)
                own = np.add.reduceat(own, starts)
        elif na:
            p_d = d[a0:a1].astype(np.float64)
            p_total = np.add(p_d, c[a0:a1])
            own = p_total
        elif b1 > b0:
            p_d = d[b0:b1].astype(np.float64)
            p_total = np.add(p_d, c[b0:b1])
            own = None
        else:
            continue
        big_n = reverse_cumsum(p_total)
        big_n += n_carry
        if own is None:
            share = np.divide(n0_carry, big_n)
        else:
            share = reverse_cumsum(own)
            share += n0_carry
            n0_carry = float(share[0])
            share /= big_n  # n_0 / N: the first group's share of those at risk
        n_carry = float(big_n[0])
        expected_0 += float(np.multiply(p_d, share).sum())
        # V: D (N - D) / (N - 1) * r (1 - r), with r = n_0 / N; nothing where N = 1
        w = np.subtract(big_n, p_d)
        w *= p_d
        big_n -= 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            w /= big_n
        if big_n[-1] <= 0:  # N = 1 (only possible at the last times: N never increases)
            w[big_n <= 0] = 0.0
        np.subtract(1.0, share, out=big_n)
        big_n *= share
        big_n *= w
        var += float(big_n.sum())
    return float(d[:split].sum()), expected_0, var


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
    # the rows are sorted runs, one per group: a stable argsort (timsort) merges the runs in
    # O(n log k) and keeps, at equal times, the group order
    runs = sorted_runs(g)  # within a stratum the rows are sorted by group code
    bounds = np.array([start for _, start, _ in runs] + [len(g)])
    codes = [code for code, _, _ in runs]
    if len(codes) == 2 and weights == "logrank":
        o_0, e_0, v = _two_group_logrank(time, d, c, int(bounds[1]))
        (a, b), total = codes, float(d.sum())
        observed[a], observed[b] = o_0, total - o_0
        expected[a], expected[b] = e_0, total - e_0
        variance[a, a] = variance[b, b] = v
        variance[a, b] = variance[b, a] = -v
        return observed, expected, variance
    order = np.argsort(time, kind="stable") if len(codes) > 1 else None
    p_time = time if order is None else time.take(order)
    starts = np.flatnonzero(np.concatenate(([True], p_time[1:] != p_time[:-1])))
    ties = len(starts) < len(p_time)
    del p_time

    def pooled(values: np.ndarray) -> np.ndarray:
        return values if order is None else values.take(order)

    def per_time(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, starts) if ties else values

    def at_risk(values: np.ndarray) -> np.ndarray:
        out = np.cumsum(values[::-1], dtype=np.float64)
        return out[::-1]

    p_d, p_total = pooled(d), pooled(d + c)
    big_d = per_time(p_d).astype(np.float64)
    big_n = at_risk(per_time(p_total))
    per_group: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if order is None:  # a single group
        per_group[codes[0]] = big_d, big_n
    else:
        # with two groups the second is what the first leaves
        own = codes[:1] if len(codes) == 2 else codes
        for j, lo, hi in zip(own, bounds[:-1], bounds[1:], strict=False):
            mine = (order >= lo) & (order < hi) if lo else order < hi
            d_j = per_time(np.where(mine, p_d, 0)).astype(np.float64)
            n_j = at_risk(per_time(np.where(mine, p_total, 0)))
            per_group[j] = d_j, n_j
        if len(codes) == 2:
            d_0, n_0 = per_group[codes[0]]
            per_group[codes[1]] = big_d - d_0, big_n - n_0
    del p_d, p_total
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
