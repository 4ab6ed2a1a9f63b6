"""A bounded loopback load test of the workspace, for ``make bench``.

:func:`load_test` starts the workspace on 127.0.0.1 (a fresh SQLite database in a temporary
folder, demo study and users), then ``users`` concurrent clients log in and read pages (study
list, patient pages, the JSON API) for ``seconds``; it returns the request count, failures and
latency percentiles in milliseconds. Reads only: the demo data is not changed. Nothing leaves the
machine.
"""

from __future__ import annotations

import random
import re
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path


def _percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def load_test(users: int = 20, seconds: float = 30.0, *, db_url: str | None = None) -> dict:
    """Run the load test; returns ``{"users", "seconds", "requests", "failed", "p50_ms", "p95_ms",
    "max_ms", "requests_per_s"}``."""
    import httpx
    import uvicorn

    from amlcohort.workspace.app import create_app
    from amlcohort.workspace.db import make_engine
    from amlcohort.workspace.setup import prepare

    with tempfile.TemporaryDirectory() as d:
        engine = make_engine(db_url or f"sqlite:///{Path(d) / 'bench.db'}")
        accounts = {a.username: a for a in prepare(engine)}
        app = create_app(engine)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                               access_log=False))
        th = threading.Thread(target=server.run, daemon=True)
        th.start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        latencies: list[float] = []
        failed = [0]
        lock = threading.Lock()
        started: list[float] = []
        ready = threading.Barrier(users, action=lambda: started.append(time.monotonic()))  # all logged in
        roles = ("investigator", "data_manager", "monitor", "statistician")

        def user(i: int) -> None:
            acc = accounts[roles[i % len(roles)]]
            with httpx.Client(base_url=base, timeout=60) as c:
                token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text)
                c.post("/login", data={"username": acc.username, "password": acc.password,
                                       "csrf_token": token.group(1) if token else ""})
                pages = ["/studies", "/s/demo", "/api/studies/demo/patients",
                         *[f"/s/demo/p/P{k:02d}" for k in range(1, 14)],
                         *[f"/api/studies/demo/patients/P{k:02d}" for k in range(1, 14)]]
                ready.wait()
                stop = time.monotonic() + seconds
                while True:
                    t0 = time.perf_counter()
                    try:
                        ok = c.get(random.choice(pages)).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    with lock:
                        latencies.append((time.perf_counter() - t0) * 1000)
                        failed[0] += not ok
                    if time.monotonic() >= stop:
                        break

        workers = [threading.Thread(target=user, args=(i,)) for i in range(users)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.monotonic() - started[0] if started else 0.0
        server.should_exit = True
        th.join(timeout=30)
        engine.dispose()
    return {"users": users, "seconds": seconds, "requests": len(latencies), "failed": failed[0],
            "p50_ms": statistics.median(latencies) if latencies else None,
            "p95_ms": _percentile(latencies, 0.95), "max_ms": max(latencies, default=None),
            "requests_per_s": len(latencies) / elapsed if elapsed else None}


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    print(json.dumps(load_test(int(sys.argv[1]) if len(sys.argv) > 1 else 20,
                               float(sys.argv[2]) if len(sys.argv) > 2 else 30.0), indent=2))
