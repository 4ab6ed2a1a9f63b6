"""Input checks shared by the statistics functions (private).

Every error names the offending argument, so a caller knows which input to fix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "ArrayLike",
    "as_1d",
    "check_conf_level",
    "check_event",
    "check_same_length",
    "check_time",
]

ArrayLike = npt.ArrayLike


def as_1d(name: str, values: ArrayLike) -> np.ndarray:
    """Return ``values`` as a 1-D NumPy array, or raise ``ValueError`` naming ``name``."""
    arr = np.asarray(values)
    if arr.ndim == 0:
        raise ValueError(f"{name} must be one-dimensional (a sequence), got a scalar")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def check_same_length(named: Sequence[tuple[str, np.ndarray]]) -> int:
    """Check that all arrays have the length of the first one; return that length.

    >>> check_same_length([("time", np.zeros(3)), ("event", np.zeros(3))])
    3
    """
    first_name, first = named[0]
    for name, arr in named[1:]:
        if len(arr) != len(first):
            raise ValueError(
                f"{name} has length {len(arr)} but {first_name} has length {len(first)}; "
                "they must have the same length"
            )
    return len(first)


def check_time(name: str, time: np.ndarray) -> np.ndarray:
    """Survival times: numeric, finite, non-negative; returned as float64 (not copied if already)."""
    if time.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be numeric, got dtype {time.dtype}")
    out = time.astype(np.float64, copy=False)
    if len(out) and not (out.min() >= 0 and out.max() < np.inf):  # min is NaN when any is NaN
        if not np.all(np.isfinite(out)):
            raise ValueError(f"{name} contains missing or infinite values")
        raise ValueError(f"{name} contains negative values")
    return out


def check_event(name: str, event: np.ndarray) -> np.ndarray:
    """Event indicators: boolean or numeric 0/1 (1 = event, 0 = censored); returned as int64.

    Integer input already in 0..1 (two reductions, no temporary) is returned without a copy.
    """
    if event.dtype.kind == "b":
        return event.astype(np.int64)
    if event.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be boolean or coded 0/1, got dtype {event.dtype}")
    if event.dtype.kind in "iu" and (len(event) == 0 or (event.min() >= 0 and event.max() <= 1)):
        return event.astype(np.int64, copy=False)
    ok = (event == 0) | (event == 1)
    if not np.all(ok):
        bad = np.asarray(event)[~ok][:3]
        raise ValueError(f"{name} must be coded 0/1 (1 = event, 0 = censored); found {bad.tolist()}")
    return event.astype(np.int64)


def check_conf_level(conf_level: float) -> float:
    """A confidence level strictly between 0 and 1."""
    level = float(conf_level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"conf_level must be strictly between 0 and 1, got {conf_level!r}")
    return level
