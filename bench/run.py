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
    return {"case": name, "patients": patients, "validate_and_load_seconds": round(seconds, 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("bench/results.json"))
    ap.add_argument("--copies", type=int, nargs="*", default=[100, 1000])
    args = ap.parse_args()
    results = [run_case("embedded", None, 13)]
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.copies:
            results.append(run_case(f"scaled_x{n}", scaled_bundle(n, Path(tmp) / f"x{n}"), 13 * n))
    record = {"machine": platform.platform(), "python": platform.python_version(), "results": results}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    for r in results:
        print(f"{r['case']:>12}: {r['patients']:>7} patients  {r['validate_and_load_seconds']:>7.2f} s  "
              f"peak RSS {r['peak_rss_mib']} MiB")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
