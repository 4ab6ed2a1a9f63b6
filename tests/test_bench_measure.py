"""bench/run.py's ``measure``: the peak RSS it records is the command's own, whatever the size of
the bench process that starts it (a child forked from a large process used to report that process's
size), and a command past its timeout is killed with everything it started."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "bench" / "run.py"


def _bench():
    spec = importlib.util.spec_from_file_location("amlcohort_bench_run", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_peak_rss_is_the_commands_own_not_the_bench_processs():
    bench = _bench()
    ballast = np.ones(400 * 2**20 // 8)  # 400 MiB touched in this (the bench's) process
    rec = bench.measure([sys.executable, "-c", "pass"], timeout=60)
    assert rec["status"] == "ok" and rec["exit"] == 0
    assert rec["rss_mib"] < 100, rec  # a bare interpreter: ~10 MiB, not this process's 400+
    allocate = "import numpy as np; x = np.ones(300 * 2**20 // 8); print(x.sum())"
    big = bench.measure([sys.executable, "-c", allocate], timeout=60)
    assert 300 < big["rss_mib"] < 500, big  # the command's own 300 MiB are counted
    assert ballast.sum() == ballast.size


def test_a_command_past_its_timeout_is_killed_with_its_children(tmp_path):
    bench = _bench()
    flag = tmp_path / "still-running"
    child = tmp_path / "child.py"
    child.write_text(f"import time\ntime.sleep(4)\nopen({str(flag)!r}, 'w').close()\n")
    parent = tmp_path / "parent.py"
    parent.write_text(f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, {str(child)!r}])\n"
                      "time.sleep(60)\n")
    start = time.perf_counter()
    rec = bench.measure([sys.executable, str(parent)], timeout=1.5)
    assert rec["status"] == "timeout" and rec["rss_mib"] is None
    assert time.perf_counter() - start < 10
    time.sleep(5)
    assert not flag.exists()  # the grandchild was killed too


def test_the_workers_exit_code_and_json_line_are_recorded():
    bench = _bench()
    worker = "import json; print('x'); print(json.dumps({'seconds': 1.5}))"
    rec = bench.measure([sys.executable, "-c", worker], timeout=60)
    assert rec["status"] == "ok" and rec["seconds"] == 1.5 and rec["wall"] < 30
    boom = "import sys; sys.stderr.write('boom'); sys.exit(3)"
    failed = bench.measure([sys.executable, "-c", boom], timeout=60)
    assert failed["status"] == "failed" and failed["exit"] == 3 and "boom" in failed["stderr"]


def test_the_record_carries_a_cpu_probe_and_the_table_prints_it(tmp_path):
    """Sessions' machines differ by 2x: results.json records a fixed workload's time at the start
    and the end of a run, and the README table's run line prints both."""
    bench = _bench()
    probe = bench.cpu_probe()
    assert 0 < probe < 30  # 2 x 10^6 doubles sorted and as many integers summed: ~0.15 s here
    record = bench.write_record(tmp_path / "results.json", [], time.time(), {"start": probe, "end": 0.25})
    assert record["machine"]["cpu_probe_seconds"] == {"start": probe, "end": 0.25}
    spec = importlib.util.spec_from_file_location("amlcohort_bench_table", BENCH.parent / "table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    text = table.markdown(json.loads((tmp_path / "results.json").read_text()))
    assert f"{probe:.3f} s at the start, 0.250 s at the end" in text
    # a record written before the probe existed still prints
    del record["machine"]["cpu_probe_seconds"]
    assert "CPU probe" not in table.markdown(record)
