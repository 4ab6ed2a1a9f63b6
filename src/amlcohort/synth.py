"""Synthetic registries: ``amlcohort synth --patients N --out DIR`` writes a valid, seeded bundle.

SYNTHETIC DATA, for scale tests and benchmarks only: nothing here describes real patients.

How it is made (vectorised; memory bounded by the chunk size, not by N):

* every synthetic patient copies the whole record of one *template* patient of the embedded study
  bundle (all tables: exposures, assessments with marrow, counts and labs, transfusions, supportive
  care, adverse events, events), drawn at random among the templates of the requested arms;
* all of the patient's dates move together by one random whole number of days (up to ten years
  earlier), so every interval, study day and cross-table relation of the template is kept and the
  bundle passes the same validation;
* blood counts and labs are multiplied by a random factor (0.85-1.15, one per assessment row,
  inside the model's hard limits); marrow blasts and response-defining values are kept, so each
  patient's response course is a real, consistent one.

Arms are a parameter (``--arms``): the codes must be arms of the template bundle (today the model
allows ``sorafenib_ldac`` and ``sorafenib_alone``); more arms (e.g. azacitidine + venetoclax)
become possible once study definitions with open arm vocabularies are on main.

Tables are written with pyarrow in chunks of patients (Parquet by default, or CSV).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import typer
import yaml

from amlcohort.schema import TABLES

__all__ = ["synth_app", "write_synthetic_bundle"]

#: Lab columns jittered multiplicatively (canonical units; the model's hard limits still hold).
JITTERED = ("anc", "platelets", "wbc", "hemoglobin", "alt", "ast", "bilirubin", "creatinine")
MAX_SHIFT_DAYS = 3650
CHUNK_PATIENTS = 100_000


def _templates(source: Path) -> dict[str, pa.Table]:
    """The template bundle's tables, every column as text (exactly as written)."""
    out = {}
    for t in TABLES:
        path = source / f"{t.name}.csv"
        if not path.exists():
            continue
        names = path.read_text().splitlines()[0].split(",")
        opts = pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True)
        out[t.name] = pacsv.read_csv(path, convert_options=opts)
    return out


def _date_columns() -> dict[str, list[str]]:
    return {t.name: [c.name for c in t.columns if c.dtype == "date"] for t in TABLES}


def _shift_dates(col: pa.ChunkedArray, shift: np.ndarray) -> pa.Array:
    days = pc.cast(pc.strptime(col, format="%Y-%m-%d", unit="s"), pa.date32())
    as_int = pc.cast(days, pa.int32()).to_numpy(zero_copy_only=False)
    valid = pc.is_valid(days).to_numpy(zero_copy_only=False)
    shifted = pa.array(np.where(valid, as_int - shift, 0).astype(np.int32), mask=~valid).cast(pa.date32())
    return pc.strftime(shifted, format="%Y-%m-%d")


def _jitter(col: pa.ChunkedArray, rng: np.random.Generator) -> pa.Array:
    values = pc.cast(col, pa.float64())
    arr = values.to_numpy(zero_copy_only=False)
    factor = rng.uniform(0.85, 1.15, len(arr))
    out = pa.array(np.round(arr * factor, 2), mask=np.isnan(arr))
    return pc.cast(out, pa.string())


def _chunk_tables(
    templates: dict[str, pa.Table],
    template_ids: np.ndarray,
    first_index: int,
    shift: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, pa.Table]:
    """Tables for one chunk of synthetic patients (``template_ids[i]`` is patient i's template)."""
    ids = templates["patients"]["patient_id"].to_numpy(zero_copy_only=False)
    new_ids = np.char.add("S", (first_index + np.arange(len(template_ids))).astype(str))
    dates = _date_columns()
    out: dict[str, pa.Table] = {}
    for name, table in templates.items():
        lookup = {pid: k for k, pid in enumerate(ids)}  # the template bundle: a few hundred rows
        owner_code = np.array([lookup[p] for p in table["patient_id"].to_pylist()], dtype=np.int64)
        # rows of template k, concatenated in the order of the synthetic patients
        order = np.argsort(owner_code, kind="stable")
        per_template = np.bincount(owner_code, minlength=len(ids))
        starts = np.concatenate(([0], np.cumsum(per_template)))
        counts = per_template[template_ids]
        patient = np.repeat(np.arange(len(template_ids)), counts)
        offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        rows = order[starts[template_ids][patient] + offset]
        chunk = table.take(pa.array(rows))
        chunk = chunk.set_column(
            chunk.schema.get_field_index("patient_id"), "patient_id", pa.array(new_ids[patient])
        )
        for col in dates.get(name, []):
            if col in chunk.column_names:
                i = chunk.schema.get_field_index(col)
                chunk = chunk.set_column(i, col, _shift_dates(chunk[col], shift[patient]))
        if name == "assessments":
            for col in JITTERED:
                if col in chunk.column_names:
                    i = chunk.schema.get_field_index(col)
                    chunk = chunk.set_column(i, col, _jitter(chunk[col], rng))
        out[name] = chunk
    return out


def write_synthetic_bundle(
    out: Path,
    patients: int,
    *,
    seed: int = 1,
    fmt: str = "parquet",
    arms: tuple[str, ...] | None = None,
    source: Path | None = None,
) -> dict[str, int]:
    """Write a synthetic bundle of ``patients`` patients to ``out``; returns rows per table."""
    from amlcohort.io.cohort import embedded_study_path

    if patients < 1:
        raise ValueError("patients must be at least 1")
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"format must be 'parquet' or 'csv', got {fmt!r}")
    src = source or embedded_study_path()
    templates = _templates(src)
    pat = templates["patients"]
    arm_of = pat["study_arm"].to_numpy(zero_copy_only=False)
    wanted = tuple(arms) if arms else tuple(dict.fromkeys(arm_of))
    unknown = [a for a in wanted if a not in set(arm_of)]
    if unknown:
        raise ValueError(f"arms {unknown} have no template patient; available: {sorted(set(arm_of))}")
    # equal share per arm, then a template patient of that arm at random
    pools = [np.flatnonzero(arm_of == a) for a in wanted]
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    writers: dict[str, pq.ParquetWriter] = {}
    rows = dict.fromkeys(templates, 0)
    try:
        for first in range(0, patients, CHUNK_PATIENTS):
            n = min(CHUNK_PATIENTS, patients - first)
            arm_pick = rng.integers(0, len(pools), n)
            template_ids = np.empty(n, dtype=np.int64)
            for k, pool in enumerate(pools):
                sel = arm_pick == k
                template_ids[sel] = pool[rng.integers(0, len(pool), int(sel.sum()))]
            shift = rng.integers(0, MAX_SHIFT_DAYS + 1, n)
            for name, table in _chunk_tables(templates, template_ids, first, shift, rng).items():
                rows[name] += table.num_rows
                if fmt == "parquet":
                    if name not in writers:
                        writers[name] = pq.ParquetWriter(out / f"{name}.parquet", table.schema)
                    writers[name].write_table(table)
                else:
                    path = out / f"{name}.csv"
                    with path.open("ab") as fh:
                        pacsv.write_csv(
                            table, fh, pacsv.WriteOptions(include_header=first == 0, quoting_style="needed")
                        )
    finally:
        for w in writers.values():
            w.close()
    meta = yaml.safe_load((src / "metadata.yaml").read_text())
    meta["study_name"] = f"SYNTHETIC registry of {patients} patients (seed {seed}) - not real patients"
    meta["source"] = "synthetic: amlcohort synth (templates: the embedded study bundle)"
    meta["reconstructed"] = True
    meta["description"] = (
        f"synthetic data: {patients} patients generated by 'amlcohort synth' (seed {seed}, arms "
        f"{', '.join(wanted)}) from the embedded study's patients, dates shifted per patient, counts "
        "and labs jittered. For scale tests and benchmarks only; describes no real patient."
    )
    (out / "metadata.yaml").write_text(
        "# SYNTHETIC DATA (amlcohort synth): not real patients.\n" + yaml.safe_dump(meta, sort_keys=False)
    )
    return rows


synth_app = typer.Typer(add_completion=False)


@synth_app.command("synth")
def synth_command(
    patients: int = typer.Option(..., "--patients", help="Number of synthetic patients."),
    out: Path = typer.Option(..., "--out", help="Folder to write the bundle to."),
    seed: int = typer.Option(1, "--seed", help="Random seed (same seed, same bundle)."),
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv."),
    arms: str = typer.Option("", "--arms", help="Comma-separated arm codes (default: all template arms)."),
) -> None:
    """Write a SYNTHETIC cohort bundle (valid, seeded) for scale tests and benchmarks."""
    chosen = tuple(a.strip() for a in arms.split(",") if a.strip()) or None
    rows = write_synthetic_bundle(out, patients, seed=seed, fmt=fmt, arms=chosen)
    typer.echo(f"wrote a synthetic bundle to {out}: " + ", ".join(f"{k} {v}" for k, v in rows.items()))
