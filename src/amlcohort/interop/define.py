"""Define-style metadata of the ADaM datasets, as CSV and JSON (not a Define-XML 2.1 file).

* ``define_datasets.csv``: dataset, label, class, structure, keys, records, file names;
* ``define_variables.csv``: dataset, order, variable, label, type (Char/Num), length, SAS format,
  origin, derivation;
* ``define.json``: both, plus the study identifier, source bundle, cut-off and criteria.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from amlcohort.interop.spec import Dataset

VARIABLE_FIELDS = (
    "dataset",
    "order",
    "variable",
    "label",
    "type",
    "length",
    "format",
    "origin",
    "derivation",
)
DATASET_FIELDS = ("dataset", "label", "class", "structure", "keys", "records", "files")


def variable_rows(spec: Dataset, lengths: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {
            "dataset": spec.name,
            "order": i,
            "variable": v.name,
            "label": v.label,
            "type": v.sas_type,
            "length": lengths.get(v.name, 8),
            "format": v.sas_format,
            "origin": v.origin,
            "derivation": v.derivation,
        }
        for i, v in enumerate(spec.variables, start=1)
    ]


def dataset_row(spec: Dataset, records: int, files: list[str]) -> dict[str, Any]:
    return {
        "dataset": spec.name,
        "label": spec.label,
        "class": spec.adam_class,
        "structure": spec.structure,
        "keys": " ".join(spec.keys),
        "records": records,
        "files": " ".join(files),
    }


def write_define(
    out: Path, datasets: list[dict[str, Any]], variables: list[dict[str, Any]], study: dict[str, Any]
) -> dict[str, Path]:
    """Write the three metadata files into ``out``; returns their paths by kind."""
    paths = {
        "define_datasets": out / "define_datasets.csv",
        "define_variables": out / "define_variables.csv",
        "define_json": out / "define.json",
    }
    for key, rows, fields in (
        ("define_datasets", datasets, DATASET_FIELDS),
        ("define_variables", variables, VARIABLE_FIELDS),
    ):
        with paths[key].open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
    doc = {
        "study": study,
        "standard": "CDISC ADaM IG 1.3 (ADaM-style)",
        "datasets": [
            {**d, "variables": [v for v in variables if v["dataset"] == d["dataset"]]} for d in datasets
        ],
    }
    paths["define_json"].write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    return paths
