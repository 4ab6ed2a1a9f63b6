"""SAS transport (XPORT) version 5 files via ``pyreadstat``: labels, SAS dates, ASCII text.

FDA's Study Data Technical Conformance Guide asks for XPORT v5: names at most 8 characters,
labels at most 40, character values at most 200 bytes of ASCII. Character lengths are the
longest value of each variable (what pyreadstat writes and the define metadata reports).
Dates are SAS dates (days since 1960-01-01) with format ``DATE9.``.

Text is never altered to fit: a value that is not ASCII (accents, dashes, CJK, ...) or longer than
200 characters is refused with :class:`XptTextError`, naming the dataset, the variable and the
first offending values (transliterating would blank or merge values, e.g. two arms named in Chinese
would both become the empty string).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from amlcohort.interop.spec import Dataset

MAX_CHAR_LENGTH = 200


class XptTextError(ValueError):
    """A character value XPORT v5 cannot hold as it is (not ASCII, or too long); nothing is altered."""


def _non_ascii(values: list[str | None]) -> list[str]:
    """The distinct values that are not ASCII, in order of appearance."""
    return list(dict.fromkeys(x for x in values if x is not None and not x.isascii()))


def check_ascii(name: str, variable: str, values: list[str | None]) -> None:
    """Raise :class:`XptTextError` when a value of ``name.variable`` is not ASCII."""
    bad = _non_ascii(values)
    if not bad:
        return
    shown = ", ".join(repr(x) for x in bad[:3]) + (f" (and {len(bad) - 3} more)" if len(bad) > 3 else "")
    hint = (
        "use ASCII arm codes in patients.study_arm and ASCII arm labels in study.yaml"
        if variable in ("ARM", "ARMCD", "ACTARM", "ACTARMCD", "TRT01P", "TRT01A")
        else "make these values ASCII in the bundle"
    )
    raise XptTextError(
        f"{name}.{variable}: {len(bad)} distinct value(s) are not ASCII, e.g. {shown}; SAS transport "
        f"(XPT v5) holds ASCII text only and nothing is altered to fit, so no file was written: "
        f"{hint}, or export another format (--format csv, parquet or xlsx keep UTF-8 text)"
    )


def xpt_frame(df: pd.DataFrame, spec: Dataset) -> pd.DataFrame:
    """``df`` with the types XPORT needs: dates as ``datetime.date``, numbers float, text as is
    (:class:`XptTextError` when a value is not ASCII or longer than 200 characters)."""
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
                None if x is None or (isinstance(x, float) and pd.isna(x)) else str(x) for x in col
            ]
            check_ascii(spec.name, v.name, text)
            too_long = [x for x in text if x is not None and len(x) > MAX_CHAR_LENGTH]
            if too_long:
                raise XptTextError(
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
    """Variable -> length as written: 8 for numbers and dates, the longest value for text (ASCII:
    :func:`xpt_frame` refuses any other)."""
    out: dict[str, int] = {}
    for v in spec.variables:
        if v.type != "Char":
            out[v.name] = 8
            continue
        values = [len(str(x).encode()) for x in df[v.name] if x is not None and not pd.isna(x)]
        out[v.name] = max([1, *values])
    return out
