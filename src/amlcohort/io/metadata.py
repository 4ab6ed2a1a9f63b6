"""The bundle's metadata file (``metadata.yaml``): study name, cut-off date, units, provenance."""

from __future__ import annotations

import datetime as dt
import re
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


#: Largest metadata file read (a metadata file is a few kilobytes; bigger ones are refused).
MAX_METADATA_BYTES = 1024 * 1024
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing anchors and aliases (``&a`` / ``*a``).

    Aliases let a few lines expand to gigabytes (the "billion laughs"); a metadata file never
    needs them, so they are refused where they appear instead of being expanded.
    """

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&name, *name) are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


def safe_yaml(text: str) -> Any:
    """Parse YAML text with the safe loader that refuses anchors and aliases."""
    return yaml.load(text, Loader=_NoAliasLoader)


def _read_text(path: Path, err: Any) -> tuple[str | None, list[Problem]]:
    """The file's text, or the problem that stops it being read (never follows a link out)."""
    if path.is_symlink() and not path.resolve().is_relative_to(path.parent.resolve()):
        return None, [err("is a link to a file outside the bundle folder; refused, not read")]
    if path.is_dir():
        return None, [err(f"{METADATA_FILE} is a folder; it must be a YAML file")]
    if not path.is_file():
        return None, [err(f"{METADATA_FILE} is not a regular file")]
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_METADATA_BYTES + 1)
    except OSError as exc:
        return None, [err(f"cannot be read: {exc.strerror}")]
    if len(data) > MAX_METADATA_BYTES:
        return None, [err(f"larger than {MAX_METADATA_BYTES // 1024} KiB; a metadata file is a few lines")]
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return None, [err(f"not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})")]


def _text(raw: dict, key: str, err: Any, problems: list[Problem], required: bool = False) -> str:
    v = raw.get(key)
    if v is None or v == "":
        if required:
            problems.append(err("required key is missing", key))
        return ""
    if not isinstance(v, str):
        problems.append(err(f"must be text, not {type(v).__name__}; put it in quotes", key, v))
        return ""
    return v


def read_metadata(path: Path) -> tuple[BundleMetadata | None, list[Problem]]:
    """Parse ``path``; returns the metadata (None when unusable) and every problem found.

    The file is read only inside the bundle folder, up to :data:`MAX_METADATA_BYTES`, with a
    safe YAML loader that refuses anchors and aliases. ``study_name`` must be text,
    ``cutoff_date`` a date (``YYYY-MM-DD``, no time, no time zone), ``reconstructed`` ``true`` or
    ``false`` (not in quotes).
    """
    where = METADATA_FILE

    def err(reason: str, column: str | None = None, value: object = None) -> Problem:
        return Problem("error", where, reason, None, column, value, "metadata")

    if not path.exists() and not path.is_symlink():
        return None, [err(f"no {METADATA_FILE} in the bundle; it needs study_name, cutoff_date, units")]
    text, problems = _read_text(path, err)
    if text is None:
        return None, problems
    try:
        raw = safe_yaml(text)
    except yaml.YAMLError as exc:
        return None, [err(f"not valid YAML: {exc}")]
    if not isinstance(raw, dict):
        return None, [err("must be a mapping of keys to values")]
    study_name = _text(raw, "study_name", err, problems, required=True)
    source = _text(raw, "source", err, problems)
    description = _text(raw, "description", err, problems)
    cutoff = raw.get("cutoff_date")
    if cutoff is None or cutoff == "":
        problems.append(err("required key is missing", "cutoff_date"))
    elif isinstance(cutoff, str):
        try:
            if not _ISO_DATE.match(cutoff.strip()):
                raise ValueError(cutoff)
            cutoff = dt.date.fromisoformat(cutoff.strip())
        except ValueError:
            problems.append(err("not a date (YYYY-MM-DD)", "cutoff_date", cutoff))
    elif isinstance(cutoff, dt.datetime):
        problems.append(
            err(
                "a date and time (with or without a time zone); give the date alone, YYYY-MM-DD",
                "cutoff_date",
                cutoff,
            )
        )
    elif not isinstance(cutoff, dt.date):
        problems.append(err("not a date (YYYY-MM-DD)", "cutoff_date", cutoff))
    reconstructed = raw.get("reconstructed", False)
    if reconstructed is None:
        reconstructed = False
    if not isinstance(reconstructed, bool):
        problems.append(err("must be true or false, without quotes", "reconstructed", reconstructed))
    units = raw.get("units") or {}
    if not isinstance(units, dict):
        problems.append(err("must map column names to units", "units", units))
        units = {}
    for k, v in units.items():
        if not isinstance(k, str) or not isinstance(v, str):
            problems.append(err('a unit must be text, e.g. "10^9/L" (in quotes)', f"units.{k}", v))
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
    notes = raw.get("notes") or {}
    if not isinstance(notes, dict):
        problems.append(err("must be a mapping", "notes", notes))
    if problems:
        return None, problems
    return BundleMetadata(
        study_name=study_name,
        cutoff_date=cutoff,
        units={str(k): str(v) for k, v in units.items()},
        reconstructed=reconstructed,
        source=source,
        description=description,
        provenance=provenance,
        notes=notes,
    ), []
