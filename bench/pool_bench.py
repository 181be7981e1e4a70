"""How fast the pool honours a live shrink, seen where operators see it (/stats/scannerPoolStats).

    .venv/bin/python bench/pool_bench.py

A migration of the fake engine (units of 100 ms that only sleep) holds a 6-thread pool; the
limit is then set to 3. Prints how soon the stats show the new grant, how soon no more than 3
units are at work (at most one unit's length: units are never cut off), and the peak after.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.db.schema import upgrade
from tests.api.conftest import settings_for
from tests.fakes.engine import FakeEngine
from tests.servers import live_server


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="ferry-pool-bench-"))
    url = f"sqlite:///{work / 'ferry.db'}"
    upgrade(url)
    engine = FakeEngine()
    with live_server(settings_for(url, work), {"files": engine}) as server:
        client = server.client
        client.put("/configuration/property", params={"key": "global.scan.limit", "value": "6"})
        client.post(
            "/migrations",
            json={
                "migrationId": "m",
                "kind": "files",
                "source": "/s",
                "target": "/t",
                "properties": {"migration.parallel.scan.percentage": "100"},
                "options": {"units": 5000, "unitSeconds": 0.1},
            },
        )
        while client.get("/stats/scannerPoolStats").json()["active"] < 6:
            time.sleep(0.01)
        time.sleep(1)
        print(
            f"limit 6: granted {client.get('/stats/scannerPoolStats').json()['allocated']}, "
            f"peak units at work {engine.concurrency.peak}"
        )
        client.put("/configuration/property", params={"key": "global.scan.limit", "value": "3"})
        shrunk = time.monotonic()
        granted_at = settled_at = None
        while time.monotonic() - shrunk < 2.0:
            stats = client.get("/stats/scannerPoolStats").json()
            elapsed = time.monotonic() - shrunk
            if granted_at is None and stats["allocated"] == 3:
                granted_at = elapsed
            if settled_at is None and stats["active"] <= 3 and engine.concurrency.now <= 3:
                settled_at = elapsed
                engine.concurrency.peak = engine.concurrency.now
            time.sleep(0.01)
        print(
            f"limit 3: stats showed the grant of 3 after {granted_at:.3f} s; "
            f"no more than 3 units at work after {settled_at:.3f} s (one unit lasts 0.1 s)"
        )
        print(
            f"peak units at work since then: {engine.concurrency.peak} "
            f"(pool peak ever: {server.services.coordinator.pool.peak_active}, under the old limit)"
        )
        client.post("/migrations/m/stop")


if __name__ == "__main__":
    main()
