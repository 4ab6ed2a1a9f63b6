"""bench/results.json as a Markdown table (for the README): ``python bench/table.py [results.json]``.

One row per case: amlcohort's time, each peer's, the ratios, amlcohort's peak RSS and whether each
target of issue 11 held; then the machine the run was on.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OURS = ("amlcohort", "amlcohort_counts", "amlcohort_ibis_duckdb")
PEERS = ("amlcohort_arrays", "amlcohort_duckdb", "statsmodels", "lifelines", "R", "pandas_groupby_apply")


def _seconds(rec: dict | None) -> str:
    if not rec:
        return ""
    if rec.get("status") != "ok":
        return str(rec.get("status", "?"))
    value = rec.get("derivations_seconds", rec.get("seconds", rec.get("wall")))
    return f"{value:.3g} s" if isinstance(value, (int, float)) else ""


def markdown(record: dict) -> str:
    rows = record["results"]
    used = [p for p in PEERS if any(p in r["peers"] for r in rows)]
    head = ["case", "amlcohort", *used, "ratios", "peak RSS", "targets"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        ours = next((r["peers"][k] for k in OURS if k in r["peers"]), None)
        ratios = "; ".join(f"{k.removeprefix('ratio_')} {v:.1f}x" for k, v in r.items()
                           if k.startswith("ratio") and isinstance(v, (int, float)))
        targets = "; ".join(f"{k} {t['goal']}: {'yes' if t['holds'] else '**no**'}"
                            for k, t in r.get("targets", {}).items())
        rss = f"{ours['rss_mib']:.0f} MiB" if ours and ours.get("rss_mib") is not None else ""
        peers = [_seconds(r["peers"].get(p)) for p in used]
        cells = [r["case"], _seconds(ours), *peers, ratios, rss, targets]
        lines.append("| " + " | ".join(cells) + " |")
    m = record["machine"]
    load = ", ".join(f"{x:.1f}" for x in m.get("load_average_at_end", ()))
    lines.append("")
    probe = m.get("cpu_probe_seconds") or {}
    speed = "; CPU probe (bench/run.py cpu_probe, lower is faster) " + ", ".join(
        f"{probe[k]:.3f} s at the {k}" for k in ("start", "end") if k in probe) if probe else ""
    lines.append(f"Run {record['started_utc']} ({record['minutes']} min) on {m['platform']}, "
                 f"Python {m['python']}, {m['cpus']} CPUs; load average at the end {load}{speed}.")
    return "\n".join(lines)


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results.json"
    print(markdown(json.loads(path.read_text())))
