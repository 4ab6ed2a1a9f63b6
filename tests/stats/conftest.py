"""Shared fixtures: R reference values (tests/fixtures/r/expected.json) and the reference data sets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

R_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "r"

#: (time column, event column, event code) for each stored data set. lung codes death as 2.
SURVIVAL_COLUMNS: dict[str, tuple[str, str, int]] = {
    "aml": ("time", "status", 1),
    "lung": ("time", "status", 2),
    "veteran": ("time", "status", 1),
    "ovarian": ("futime", "fustat", 1),
    "half": ("time", "status", 1),
    "end_at_half": ("time", "status", 1),
    "ties": ("time", "status", 1),
    "all_censored": ("time", "status", 1),
}

RTOL = 1e-6
ATOL = 1e-9


def _to_float(value: Any) -> Any:
    """JSON null -> NaN, "Inf" -> inf, recursively for lists."""
    if isinstance(value, list):
        return [_to_float(v) for v in value]
    if value is None:
        return np.nan
    if value == "Inf":
        return np.inf
    if value == "-Inf":
        return -np.inf
    return value


def assert_close(
    actual: Any, expected: Any, *, rtol: float = RTOL, atol: float = ATOL, what: str = ""
) -> None:
    """Compare to R: relative tolerance 1e-6 (absolute 1e-9 near zero); R's NA must be NaN/None here."""
    if actual is None:
        actual = np.nan
    act = np.asarray([np.nan if a is None else a for a in np.atleast_1d(actual)], dtype=np.float64)
    exp = np.asarray(np.atleast_1d(_to_float(expected)), dtype=np.float64)
    np.testing.assert_allclose(act, exp, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


@pytest.fixture(scope="session")
def r_expected() -> dict[str, Any]:
    with open(R_DIR / "expected.json", encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture(scope="session")
def r_data() -> Callable[[str], pd.DataFrame]:
    cache: dict[str, pd.DataFrame] = {}

    def load(name: str) -> pd.DataFrame:
        if name not in cache:
            cache[name] = pd.read_csv(R_DIR / f"{name}.csv")
        return cache[name].copy()

    return load


@pytest.fixture(scope="session")
def surv_arrays(r_data: Callable[[str], pd.DataFrame]) -> Callable[[str], tuple[np.ndarray, np.ndarray]]:
    """(time, event) arrays of a stored data set, with event as 0/1."""

    def get(name: str) -> tuple[np.ndarray, np.ndarray]:
        df = r_data(name)
        tcol, ecol, code = SURVIVAL_COLUMNS[name]
        return df[tcol].to_numpy(dtype=float), (df[ecol] == code).to_numpy().astype(int)

    return get


@pytest.fixture(scope="session")
def assert_r() -> Callable[..., None]:
    """The comparison used everywhere: :func:`assert_close`."""
    return assert_close
