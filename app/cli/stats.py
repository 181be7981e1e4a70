"""``ferry stats``: the global scan pool and what each running migration holds of it."""

from __future__ import annotations

from typing import Any

from app.cli import render
from app.cli.client import DEFAULT_URL, JsonOption, TokenOption, UrlOption, connect


def _pool(stats: dict[str, Any]) -> dict[str, Any]:
    shares = stats["priorityAllocations"]
    return {
        "pool size": f"{stats['poolSize']} threads (max {stats['poolMax']})",
        "granted": stats["allocated"],
        "active": stats["active"],
        "idle": stats["idle"],
        "migrations": f"{stats['runningMigrations']} running ({stats['waitingMigrations']} waiting for threads), "
        f"{stats['scheduledMigrations']} scheduled; at most {stats['maxRunningMigrations'] or 'unlimited'} running",
        "shares": f"LOW {shares['LOW']}, NORMAL {shares['NORMAL']}, HIGH {shares['HIGH']}; "
        f"at most {stats['maxThreadsPerMigration']} threads each",
        "copied since start": f"{render.size(stats['totals']['bytesCopied'])} in "
        f"{stats['totals']['unitsCompleted']} units ({stats['totals']['unitsFailed']} failed)",
    }


def stats(as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """The pool as a table: size, threads granted and at work, and each running migration's share.

    A SHARE marked ``*`` is the migration's own override rather than its priority's share.
    """
    with connect(url, token) as client:
        body = client.get("/stats/scannerPoolStats")
    if as_json:
        render.print_json(body)
        return
    out = render.console()
    out.print(render.pairs(_pool(body), title=f"scan pool at {body['sampledAt']}"))
    columns = ["ID", "KIND", "PRIO", "SHARE", "REQ", "GRANT", "ACTIVE", "UNITS", "COPIED", "SPEED"]
    rows = (
        [
            m["migrationId"],
            m["kind"],
            m["priority"],
            m["percentage"] + ("*" if m["percentageSource"] == "override" else ""),
            m["requested"],
            m["granted"],
            m["active"],
            m["unitsCompleted"],
            render.size(m["bytesCopied"]),
            render.speed(m["bytesPerSecond"]),
        ]
        for m in body["migrations"]
    )
    out.print(render.table(columns, rows, title="running migrations"))
