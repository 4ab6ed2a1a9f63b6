"""The data dictionary (``docs/data_dictionary.md``), generated from the cohort model."""

from __future__ import annotations

from amlcohort.schema.model import TABLES, Column
from amlcohort.schema.study import STUDY_FILE, STUDY_KEYS


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
        "per table, and optionally `study.yaml` (the study definition, below). Dates are `YYYY-MM-DD`.",
        "Every date column `X_date` gets `X_study_day` on load (day 1 = the first dose of the study's",
        "index drug, or of any drug; no day 0). Ranges are in the canonical unit.",
        "",
        f"## `{STUDY_FILE}` (optional): the study definition",
        "",
        "What is particular to the study. Without it, the arms are the distinct `study_arm` values",
        "(label = code), day 1 is the first dose of any drug, response criteria are ELN 2022 and labs",
        "are graded with the CTCAE version of the adverse events (else 5.0). Paths name files inside",
        "the bundle folder. The embedded study's `src/amlcohort/data/study/study.yaml` is an example.",
        "",
        "| key | required | meaning |",
        "|---|---|---|",
        *(f"| `{k}` | {'yes' if req else ''} | {what} |" for k, req, what in STUDY_KEYS),
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
