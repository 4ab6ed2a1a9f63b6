"""Rows in an order no database's collation decides.

An engine's ``ORDER BY`` compares text by the database's collation: DuckDB, SQLite and a
PostgreSQL database in the C locale by code point, a PostgreSQL database with an ICU or libc locale
its own way (en-US: "p-3" < "P_1" < "Z2"). Rows whose order is drawn or printed (a swimmer plot's
bars, a table of patients) are therefore sorted in Python, after they are read, the same on every
engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd


def in_order(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``df`` sorted by ``keys`` in Python's order: text by code point, missing values last; stable
    (rows equal on the keys keep their order); a fresh 0..n-1 index."""
    return df.sort_values(keys, kind="stable", na_position="last").reset_index(drop=True)


def read_in_order(expr: ir.Table, keys: list[str]) -> pd.DataFrame:
    """``expr``'s rows, read, then sorted by ``keys`` with :func:`in_order`."""
    return in_order(expr.execute(), keys)
