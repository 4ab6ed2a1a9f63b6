"""SAS transport (XPORT) version 5 files via ``pyreadstat``: labels, SAS dates, ASCII text.

FDA's Study Data Technical Conformance Guide asks for XPORT v5: names at most 8 characters,
labels at most 40, character values at most 200 bytes of ASCII. Character lengths are the
longest value of each variable (what pyreadstat writes and the define metadata reports).
Dates are SAS dates (days since 1960-01-01) with format ``DATE9.``.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from pathlib import Path

import pandas as pd

from amlcohort.interop.spec import Dataset

MAX_CHAR_LENGTH = 200


def ascii_text(value: object) -> object:
    """A character value as XPORT v5 holds it: ASCII (accents dropped, dashes and quotes plain)."""
    if not isinstance(value, str):
        return value
    plain = value.replace("–", "-").replace("—", "-").replace("’", "'").replace("≥", ">=").replace("≤", "<=")
    return unicodedata.normalize("NFKD", plain).encode("ascii", "ignore").decode("ascii")


def xpt_frame(df: pd.DataFrame, spec: Dataset) -> pd.DataFrame:
    """``df`` with the types XPORT needs: dates as ``datetime.date``, numbers float, text ASCII."""
    out = pd.DataFrame(index=df.index)
    for v in spec.variables:
        col = df[v.name]
        if v.type == "Date":
            out[v.name] = [
                None if pd.isna(x) else (x.date() if isinstance(x, dt.datetime | pd.Timestamp) else x)
                for x in col
            ]
        elif v.type == "Num":
            out[v.name] = pd.to_numeric(col, errors="raise").astype("float64")
        else:
            text = [
                None if x is None or (isinstance(x, float) and pd.isna(x)) else ascii_text(str(x))
                for x in col
            ]
            too_long = [x for x in text if x is not None and len(x) > MAX_CHAR_LENGTH]
            if too_long:
                raise ValueError(
                    f"{spec.name}.{v.name}: value longer than {MAX_CHAR_LENGTH} characters "
                    f"({too_long[0][:40]!r}...)"
                )
            out[v.name] = pd.Series(["" if x is None else x for x in text], index=df.index, dtype="object")
    return out


def write_xpt(df: pd.DataFrame, spec: Dataset, path: str | Path) -> Path:
    """Write one dataset as an XPORT v5 file named after it (``adsl.xpt``); returns the path."""
    path = Path(path)
    frame = xpt_frame(df, spec)
    import pyreadstat

    pyreadstat.write_xport(
        frame,
        str(path),
        file_label=spec.label,
        column_labels={v.name: v.label for v in spec.variables},
        table_name=spec.name,
        file_format_version=5,
        variable_format={v.name: v.sas_format for v in spec.variables if v.sas_format},
    )
    return path


def char_lengths(df: pd.DataFrame, spec: Dataset) -> dict[str, int]:
    """Variable -> length as written: 8 for numbers and dates, the longest ASCII value for text."""
    out: dict[str, int] = {}
    for v in spec.variables:
        if v.type != "Char":
            out[v.name] = 8
            continue
        values = [len(str(ascii_text(x))) for x in df[v.name] if x is not None and not pd.isna(x)]
        out[v.name] = max([1, *values])
    return out
