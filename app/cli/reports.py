"""``ferry migrations failures ID`` and ``... verification ID``: the two paginated reports.

Both print one page (``--offset``, ``--limit``), or every page with ``--all``; ``--json``
prints the server's JSON (with ``--all``, the pages' items in one list).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from app.cli import render
from app.cli.client import DEFAULT_URL, GENERIC, FerryClient, JsonOption, TokenOption, UrlOption, connect

IdArgument = Annotated[str, typer.Argument(metavar="ID", help="the migration's id", show_default=False)]
OffsetOption = Annotated[int, typer.Option(min=0, metavar="N", help="entries to skip")]
LimitOption = Annotated[int, typer.Option(min=1, max=1000, metavar="N", help="entries per page")]
AllOption = Annotated[bool, typer.Option("--all", help="every page, not one")]
#: Seconds between polls of --wait.
POLL_SECONDS = 0.5


def _items(page: Any, key: str) -> list[dict[str, Any]]:
    """A page's entries, whether the server sends a bare list or an object holding one."""
    if isinstance(page, list):
        return page
    found = page.get(key, page.get("items", []))
    return list(found) if isinstance(found, list) else []


def _pages(client: FerryClient, path: str, key: str, offset: int, limit: int, every: bool) -> tuple[Any, list[Any]]:
    """The first page as the server sent it, and the entries of it (and of the rest, with every)."""
    first = client.get(path, offset=offset, limit=limit)
    entries = _items(first, key)
    page = entries
    while every and len(page) == limit:
        offset += limit
        page = _items(client.get(path, offset=offset, limit=limit), key)
        entries += page
    return first, entries


def failures(
    migration_id: IdArgument,
    offset: OffsetOption = 0,
    limit: LimitOption = 100,
    every: AllOption = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """List the entries a migration could not copy: path, reason, attempts and time."""
    with connect(url, token) as client:
        first, entries = _pages(client, f"/migrations/{migration_id}/failures", "failures", offset, limit, every)
    if as_json:
        render.print_json(entries if every else first)
        return
    rows = ([e.get("path"), e.get("reason"), e.get("attempts"), e.get("time")] for e in entries)
    total = first.get("total") if isinstance(first, dict) else None
    title = f"{total} entries not copied" if isinstance(total, int) else None
    render.console().print(render.table(["PATH", "REASON", "ATTEMPTS", "TIME"], rows, title=title))
    more = offset + len(entries) < total if isinstance(total, int) else len(entries) == limit
    if not every and more:
        typer.echo(f"more after these {len(entries)}: --offset {offset + len(entries)}, or --all", err=True)


def verification(
    migration_id: IdArgument,
    offset: OffsetOption = 0,
    limit: LimitOption = 100,
    every: AllOption = False,
    wait: Annotated[bool, typer.Option("--wait", help="first wait until a RUNNING verification has ended")] = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Show the latest verification of a migration: its status, counts and discrepancies.

    Exits 0 when it COMPLETED without discrepancies, 1 otherwise (RUNNING, FAILED, or any found).
    """
    path = f"/migrations/{migration_id}/verification"
    with connect(url, token) as client:
        while wait and client.get(path, offset=0, limit=1)["status"] == "RUNNING":
            time.sleep(POLL_SECONDS)
        report, entries = _pages(client, path, "discrepancies", offset, limit, every)
    if as_json:
        render.print_json({**report, "discrepancies": entries} if every else report)
    else:
        _print_verification(migration_id, report, entries, limit if not every else None, offset)
    found = (report.get("counts") or {}).get("discrepancies", len(entries))
    if report["status"] != "COMPLETED" or found:
        raise typer.Exit(GENERIC)


def _print_verification(
    migration_id: str, report: dict[str, Any], entries: list[dict[str, Any]], limit: int | None, offset: int
) -> None:
    summary = {
        "status": render.state(report["status"]),
        "started": report.get("startedTime"),
        "completed": report.get("completedTime"),
        "error": report.get("error"),
        **(report.get("counts") or {}),
    }
    out = render.console()
    out.print(render.pairs(summary, title=f"verification of {migration_id}"))
    rows = ([e.get("type"), e.get("path"), e.get("detail")] for e in entries)
    out.print(render.table(["TYPE", "PATH", "DETAIL"], rows, title="discrepancies"))
    if limit is not None and len(entries) == limit:
        typer.echo(f"more after these {limit}: --offset {offset + limit}, or --all", err=True)
