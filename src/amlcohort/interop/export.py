"""Write a cohort's ADaM datasets: Parquet, CSV and SAS transport v5 per dataset, plus define metadata.

``amlcohort export DIR --format adam [--from BUNDLE]`` calls :func:`write_adam`.
Files (dataset names lower-case, as FDA submissions name them): ``adsl.xpt``, ``adsl.parquet``,
``adsl.csv``, ... and ``define_datasets.csv``, ``define_variables.csv``, ``define.json``.

Every dataset is derived, and its XPT form checked (ASCII text only, see :mod:`amlcohort.interop.xpt`),
before the first file is written: a refused value leaves ``out`` as it was. (The command writes into
a fresh folder swapped in whole, so an interrupted export leaves nothing half-written either.)
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from amlcohort.interop.adam import TRTEMFL_WINDOW_DAYS, AdamBuilder, ctcae_version, study_name
from amlcohort.interop.define import dataset_row, variable_rows, write_define
from amlcohort.interop.spec import DATASETS_BY_NAME
from amlcohort.interop.xpt import char_lengths, write_xpt, xpt_frame
from amlcohort.io.cohort import Cohort

FORMATS = ("xpt", "parquet", "csv")


def write_adam(
    cohort: Cohort,
    out: str | Path,
    *,
    criteria: str | None = None,
    formats: tuple[str, ...] = FORMATS,
    trtemfl_window_days: int = TRTEMFL_WINDOW_DAYS,
) -> dict[str, Path]:
    """Derive the five datasets of ``cohort`` and write them into ``out``; returns every path by name."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown ADaM file format(s) {unknown}; use {list(FORMATS)}")
    out = Path(out)
    builder = AdamBuilder(cohort, criteria, trtemfl_window_days)
    derived: dict[str, pa.Table] = {name: table.to_pyarrow() for name, table in builder.all().items()}
    if "xpt" in formats:  # refuse text XPT v5 cannot hold before anything is written
        for name, arrow in derived.items():
            xpt_frame(arrow.to_pandas(), DATASETS_BY_NAME[name])
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    ds_rows, var_rows = [], []
    for name, arrow in derived.items():
        spec = DATASETS_BY_NAME[name]
        stem = out / name.lower()
        files = []
        if "parquet" in formats:
            pq.write_table(arrow, stem.with_suffix(".parquet"))
            files.append(stem.with_suffix(".parquet"))
        if "csv" in formats:
            pacsv.write_csv(arrow, stem.with_suffix(".csv"))
            files.append(stem.with_suffix(".csv"))
        df = arrow.to_pandas()
        if "xpt" in formats:
            files.append(write_xpt(df, spec, stem.with_suffix(".xpt")))
        for f in files:
            paths[f.name] = f
        ds_rows.append(dataset_row(spec, arrow.num_rows, [f.name for f in files]))
        var_rows += variable_rows(spec, char_lengths(df, spec))
    study = {
        "STUDYID": builder.studyid,
        "study_name": study_name(cohort),
        "cutoff_date": cohort.metadata.cutoff_date.isoformat(),
        "reconstructed": cohort.metadata.reconstructed,
        "response_criteria": builder.criteria,
        "ctcae_version": ctcae_version(cohort),
        "trtemfl_window_days": builder.window,
    }
    paths.update({p.name: p for p in write_define(out, ds_rows, var_rows, study).values()})
    return paths
