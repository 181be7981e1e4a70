"""``ferry migrations watch ID...``: a live progress bar per migration until they all end."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from app.cli import render
from app.cli.client import DEFAULT_URL, GENERIC, FerryClient, TokenOption, UrlOption, connect

#: States in which a migration is still on its way; any other state ends the watch of it.
UNDER_WAY = frozenset({"SCHEDULED", "RUNNING"})


def _columns() -> list[TextColumn | BarColumn]:
    return [
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.fields[state]}"),
        BarColumn(),
        TextColumn("{task.fields[percent]:>6}"),
        TextColumn("{task.fields[bytes]}"),
        TextColumn("{task.fields[speed]}"),
        TextColumn("ETA {task.fields[eta]}"),
        TextColumn("threads {task.fields[threads]}"),
    ]


def _fields(migration: dict[str, Any]) -> dict[str, Any]:
    """What one poll shows: the server's own speed and ETA, not ones guessed from our polls."""
    progress, pool = migration.get("progress") or {}, migration["pool"]
    return {
        "state": migration["state"],
        "percent": render.percent(progress.get("percentComplete")),
        "bytes": _figures(progress),
        "speed": render.speed(progress.get("bytesPerSecond")),
        "eta": render.duration(progress.get("etaSeconds")),
        "threads": f"{pool['granted']} granted/{pool['active']} active",
    }


def _figures(progress: dict[str, Any]) -> str:
    """Copied, then what moved no data (zeroed, skipped) as labelled figures, then the total."""
    parts = [f"copied {render.size(progress.get('bytesCopied'))}"]
    parts += [f"{label} {render.size(progress[key])}" for key, label in _NO_DATA if progress.get(key)]
    if progress.get("filesSkipped"):
        parts.append(f"skipped {progress['filesSkipped']} files")
    text = ", ".join(parts)
    if not progress.get("bytesTotal"):
        return text
    return f"{text}{' ' if len(parts) == 1 else ', '}of {render.size(progress['bytesTotal'])}"


#: Disk progress that counts work done without data moving.
_NO_DATA = (("bytesZeroed", "zeroed"), ("bytesSkipped", "skipped"))


def _update(progress: Progress, task: TaskID, migration: dict[str, Any]) -> None:
    done = (migration.get("progress") or {}).get("percentComplete")
    known = isinstance(done, int | float)
    # An unknown total (a scan still discovering) shows a pulsing bar rather than a false 0%.
    progress.update(task, total=100.0 if known else None, completed=done if known else 0, **_fields(migration))


def _follow(client: FerryClient, ids: list[str], interval: float) -> dict[str, dict[str, Any]]:
    # The first poll happens before any bar is drawn, so an unknown id fails on a clean screen.
    latest = {job_id: client.get(f"/migrations/{job_id}") for job_id in ids}
    ended: dict[str, dict[str, Any]] = {}
    with Progress(*_columns(), console=render.console(), refresh_per_second=4) as progress:
        tasks = {job_id: progress.add_task(job_id, total=None, **_fields(latest[job_id])) for job_id in ids}
        while True:
            for job_id in ids:
                if job_id in ended:
                    continue
                migration = latest.pop(job_id, None) or client.get(f"/migrations/{job_id}")
                _update(progress, tasks[job_id], migration)
                if migration["state"] not in UNDER_WAY:
                    ended[job_id] = migration
            if len(ended) == len(ids):
                return ended
            time.sleep(interval)


def watch(
    migration_ids: Annotated[
        list[str], typer.Argument(metavar="ID...", help="the migrations to follow", show_default=False)
    ],
    interval: Annotated[float, typer.Option(min=0.1, metavar="SECONDS", help="seconds between polls")] = 1.0,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Follow migrations live: percent, bytes, speed, ETA and threads, until every one has ended.

    Exits 0 when all of them COMPLETED, 1 when any ended otherwise (FAILED, STOPPED, or never
    started), 3 when an id is unknown.
    """
    ids = list(dict.fromkeys(migration_ids))
    with connect(url, token) as client:
        ended = _follow(client, ids, interval)
    out = render.console()
    unfinished = 0
    for job_id in ids:
        migration = ended[job_id]
        line = render.state(migration["state"])
        if migration["state"] != "COMPLETED":
            unfinished += 1
            if migration.get("error"):
                line.append(f": {migration['error']}")
        out.print(f"{job_id} ", line, sep="")
    if unfinished:
        raise typer.Exit(GENERIC)
