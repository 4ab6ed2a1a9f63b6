"""The load test runs, bounded, and reports no failed request (a tiny run: 2 users, 2 s)."""

import pytest

from amlcohort.workspace.bench import _percentile, load_test


def test_percentile():
    assert _percentile(list(range(1, 101)), 0.95) == 95
    assert _percentile([], 0.95) is None


@pytest.mark.slow
def test_load_test_small_run():
    r = load_test(users=2, seconds=2.0)
    assert r["requests"] > 0 and r["failed"] == 0
    assert r["p95_ms"] >= r["p50_ms"] > 0
