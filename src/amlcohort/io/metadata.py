"""The bundle's metadata file (``metadata.yaml``): study name, cut-off date, units, provenance."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from amlcohort.problems import Problem
from amlcohort.schema import TABLES_BY_NAME

METADATA_FILE = "metadata.yaml"
PROVENANCE_KINDS = ("published", "reconstructed", "derived")


@dataclass(frozen=True)
class BundleMetadata:
    """What a bundle says about itself.

    ``units`` maps a column (``anc`` or ``assessments.anc``) to the unit its values are in;
    ``provenance`` maps table → column → ``published`` | ``reconstructed`` | ``derived``.
    """

    study_name: str
    cutoff_date: dt.date
    units: dict[str, str] = field(default_factory=dict)
    reconstructed: bool = False
    source: str = ""
    description: str = ""
    provenance: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def unit_of(self, table: str, column: str) -> str | None:
        return self.units.get(f"{table}.{column}", self.units.get(column))

    def reconstructed_columns(self) -> dict[str, list[str]]:
        return {
            t: [c for c, k in cols.items() if k == "reconstructed"] for t, cols in self.provenance.items()
        }


def read_metadata(path: Path) -> tuple[BundleMetadata | None, list[Problem]]:
    """Parse ``path``; returns the metadata (None when unusable) and every problem found."""
    where = METADATA_FILE

    def err(reason: str, column: str | None = None, value: object = None) -> Problem:
        return Problem("error", where, reason, None, column, value, "metadata")

    if not path.exists():
        return None, [err(f"no {METADATA_FILE} in the bundle; it needs study_name, cutoff_date, units")]
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        return None, [err(f"not UTF-8 text: {exc}")]
    except yaml.YAMLError as exc:
        return None, [err(f"not valid YAML: {exc}")]
    if not isinstance(raw, dict):
        return None, [err("must be a mapping of keys to values")]
    problems: list[Problem] = []
    for key in ("study_name", "cutoff_date"):
        if key not in raw or raw[key] in (None, ""):
            problems.append(err("required key is missing", key))
    cutoff = raw.get("cutoff_date")
    if isinstance(cutoff, str):
        try:
            cutoff = dt.date.fromisoformat(cutoff)
        except ValueError:
            problems.append(err("not a date (YYYY-MM-DD)", "cutoff_date", cutoff))
    elif cutoff is not None and not isinstance(cutoff, dt.date):
        problems.append(err("not a date (YYYY-MM-DD)", "cutoff_date", cutoff))
    units = raw.get("units") or {}
    if not isinstance(units, dict):
        problems.append(err("must map column names to units", "units", units))
        units = {}
    provenance = raw.get("provenance") or {}
    if not isinstance(provenance, dict):
        problems.append(err("must map table → column → kind", "provenance", provenance))
        provenance = {}
    for tname, cols in provenance.items():
        if tname not in TABLES_BY_NAME or not isinstance(cols, dict):
            problems.append(err("unknown table or not a column mapping", f"provenance.{tname}"))
            continue
        for col, kind in cols.items():
            if kind not in PROVENANCE_KINDS:
                problems.append(err(f"must be one of {PROVENANCE_KINDS}", f"provenance.{tname}.{col}", kind))
    if problems:
        return None, problems
    return BundleMetadata(
        study_name=str(raw["study_name"]),
        cutoff_date=cutoff,
        units={str(k): str(v) for k, v in units.items()},
        reconstructed=bool(raw.get("reconstructed", False)),
        source=str(raw.get("source", "")),
        description=str(raw.get("description", "")),
        provenance=provenance,
        notes=raw.get("notes") or {},
    ), []
