"""The data dictionary (``docs/data_dictionary.md``), generated from the cohort model."""

from __future__ import annotations

from amlcohort.schema.model import TABLES, Column


def _unit(c: Column) -> str:
    if not c.unit:
        return ""
    others = [u.name for u in c.units]
    return c.unit + (f" (also: {', '.join(others)})" if others else "")


def _limits(c: Column) -> str:
    parts = []
    if c.allowed:
        parts.append("one of: " + ", ".join(f"`{a}`" for a in c.allowed))
    if c.hard_min is not None or c.hard_max is not None:
        parts.append(
            f"possible {c.hard_min if c.hard_min is not None else ''}–"
            f"{c.hard_max if c.hard_max is not None else ''}"
        )
    if c.soft_min is not None or c.soft_max is not None:
        parts.append(
            f"plausible {c.soft_min if c.soft_min is not None else ''}–"
            f"{c.soft_max if c.soft_max is not None else ''}"
        )
    if c.unit_check:
        parts.append(f"above {c.unit_check[0]:g} suspected {c.unit_check[1]}")
    return "; ".join(parts)


def data_dictionary() -> str:
    """Markdown for every table and column of the model."""
    out = [
        "# Data dictionary",
        "",
        "Generated from `src/amlcohort/schema/model.py` by `make dictionary`; do not edit by hand.",
        "",
        "A cohort bundle is a folder with `metadata.yaml` (study_name, cutoff_date, units, provenance)",
        "and one file per table: `<table>.csv`, `<table>.parquet`, or one `.xlsx` workbook with a sheet",
        "per table. Dates are `YYYY-MM-DD`. Every date column `X_date` gets `X_study_day` on load",
        "(day 1 = first sorafenib dose, no day 0). Ranges are in the canonical unit.",
        "",
    ]
    for t in TABLES:
        out += [
            f"## `{t.name}`{'' if t.required else ' (optional)'}",
            "",
            t.description,
            "",
            f"Key: {', '.join(f'`{k}`' for k in t.key)}",
            "",
            "| column | type | required | unit | allowed / limits | description |",
            "|---|---|---|---|---|---|",
        ]
        out += [
            f"| `{c.name}` | {c.dtype} | {'yes' if c.required else ''} | {_unit(c)} | {_limits(c)} | "
            f"{c.description} |"
            for c in t.columns
        ]
        out.append("")
    return "\n".join(out)
