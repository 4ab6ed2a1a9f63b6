"""Benchmarks (not tests): load and validate time and peak memory, embedded and scaled cohorts.

The scaled cohorts replicate the embedded bundle with new patient ids (n copies x 13 patients).
Results go to the file given by --out (JSON), one record per case.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from amlcohort.io.cohort import embedded_study_path, validate_bundle
from amlcohort.schema import TABLES


def scaled_bundle(copies: int, dest: Path) -> Path:
    src = embedded_study_path()
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "metadata.yaml").write_text((src / "metadata.yaml").read_text())
    for t in TABLES:
        names = (src / f"{t.name}.csv").read_text().splitlines()[0].split(",")
        opts = pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True)
        base = pacsv.read_csv(src / f"{t.name}.csv", convert_options=opts)
        parts = []
        for k in range(copies):
            ids = pc.binary_join_element_wise(base["patient_id"], pa.scalar(f"-{k}"), "")
            parts.append(base.set_column(base.schema.get_field_index("patient_id"), "patient_id", ids))
        pacsv.write_csv(pa.concat_tables(parts), dest / f"{t.name}.csv")
    return dest


def run_case(name: str, path: Path | None, patients: int) -> dict:
    start = time.perf_counter()
    report, cohort = validate_bundle(path)
    seconds = time.perf_counter() - start
    assert report.ok and cohort is not None, report.errors[:3]
    return {
        "case": name,
        "patients": patients,
        "validate_and_load_seconds": round(seconds, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def survival_at_scale(n: int) -> dict:
    """Kaplan-Meier and log-rank on n synthetic patients: the database aggregates, Python sees counts."""
    import ibis

    from amlcohort.stats import event_counts, kaplan_meier_by_group_from_counts, logrank_test_from_counts

    con = ibis.duckdb.connect()
    t = con.sql(
        f"SELECT (range % 2)::VARCHAR AS grp, floor(random() * 2000)::DOUBLE AS time, "
        f"(random() < 0.7)::INTEGER AS event FROM range({n})"
    )
    start = time.perf_counter()
    counts = event_counts(t, "time", "event", group="grp")
    km = kaplan_meier_by_group_from_counts(counts)
    p = logrank_test_from_counts(counts).p_value
    seconds = time.perf_counter() - start
    return {
        "case": f"km_logrank_{n}",
        "patients": n,
        "count_rows": len(counts),
        "seconds": round(seconds, 3),
        "medians": {str(k): v.median_ for k, v in km.items()},
        "logrank_p": p,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def derivations_at_scale(path: Path, patients: int) -> dict:
    """Response derivation and the analysis table on a scaled cohort."""
    from amlcohort import load_cohort
    from amlcohort.endpoints.analysis import analysis_table

    cohort = load_cohort(path)
    start = time.perf_counter()
    rows = analysis_table(cohort).count().execute()
    seconds = time.perf_counter() - start
    return {
        "case": f"analysis_table_{patients}",
        "patients": patients,
        "rows": int(rows),
        "seconds": round(seconds, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("bench/results.json"))
    ap.add_argument("--copies", type=int, nargs="*", default=[100, 1000])
    ap.add_argument("--km-patients", type=int, default=2_000_000)
    args = ap.parse_args()
    results = [run_case("embedded", None, 13)]
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.copies:
            path = scaled_bundle(n, Path(tmp) / f"x{n}")
            results.append(run_case(f"scaled_x{n}", path, 13 * n))
            results.append(derivations_at_scale(path, 13 * n))
    results.append(survival_at_scale(args.km_patients))
    record = {"machine": platform.platform(), "python": platform.python_version(), "results": results}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    for r in results:
        secs = r.get("validate_and_load_seconds", r.get("seconds"))
        print(
            f"{r['case']:>24}: {r['patients']:>8} patients  {secs:>7.2f} s  peak RSS {r['peak_rss_mib']} MiB"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
