"""Benchmark case for the perf engineer: one CTCAE ``grade()`` lookup, cold and warm.

Call ``grade_lookup()`` from ``bench/run.py`` (it returns a dict like the other cases). Target
(issue 10): a warm call under 10 ms; the first call pays for reading the rule files.
"""

from __future__ import annotations

import time


def grade_lookup(n: int = 1000) -> dict:
    """Seconds for the first ``grade()`` call and the median of ``n`` warm calls (ms)."""
    t0 = time.perf_counter()
    from amlcohort.criteria.ctcae import grade

    grade("alt_increased", 2.1, uln=0.7)
    cold = time.perf_counter() - t0
    laps = []
    for i in range(n):
        t = time.perf_counter()
        value = 159.15 + (i % 3) * 0.01
        grade("creatinine_increased", value, uln=106.1, baseline=90.0, version="5.0")
        laps.append(time.perf_counter() - t)
    laps.sort()
    return {"case": "ctcae_grade_lookup", "cold_s": round(cold, 4),
            "warm_median_ms": round(laps[n // 2] * 1e3, 4),
            "warm_p99_ms": round(laps[int(n * 0.99)] * 1e3, 4), "calls": n}


if __name__ == "__main__":
    print(grade_lookup())
