"""``ferry migrations ...``: define, read and act on migrations over HTTP."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from app.cli import render
from app.cli.client import DEFAULT_URL, USAGE, JsonOption, TokenOption, UrlOption, connect, fail
from app.cli.reports import failures, verification
from app.cli.watch import watch

SCAN_PERCENTAGE = "migration.parallel.scan.percentage"

migrations_cli = typer.Typer(help="Define, read and act on migrations.", no_args_is_help=True, rich_markup_mode=None)

IdArgument = Annotated[str, typer.Argument(metavar="ID", help="the migration's id", show_default=False)]


def _row(migration: dict[str, Any]) -> list[Any]:
    progress, pool = migration.get("progress") or {}, migration["pool"]
    return [
        migration["migrationId"],
        migration["kind"],
        render.state(migration["state"]),
        migration["priority"],
        f"{pool['percentage']}: {pool['active']}/{pool['granted']}/{pool['requested']}",
        render.percent(progress.get("percentComplete")),
        render.size(progress.get("bytesCopied")),
        render.speed(progress.get("bytesPerSecond")),
        render.duration(progress.get("etaSeconds")),
    ]


@migrations_cli.command("list")
def list_migrations(
    state: Annotated[
        str | None, typer.Option(metavar="STATE", help="only migrations in this state, e.g. RUNNING")
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """List migrations with their state, pool share and progress.

    POOL reads ``share: active/granted/requested`` threads.
    """
    with connect(url, token) as client:
        migrations = client.get("/migrations", **({"state": state.upper()} if state else {}))
    if as_json:
        render.print_json(migrations)
        return
    columns = ["ID", "KIND", "STATE", "PRIORITY", "POOL", "DONE", "COPIED", "SPEED", "ETA"]
    render.console().print(render.table(columns, (_row(m) for m in migrations)))


@migrations_cli.command()
def show(
    migration_id: IdArgument, as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """Show one migration: definition, state, pool share and every progress field."""
    with connect(url, token) as client:
        migration = client.get(f"/migrations/{migration_id}")
    if as_json:
        render.print_json(migration)
        return
    pool = migration["pool"]
    summary = {
        "migrationId": migration["migrationId"],
        "kind": migration["kind"],
        "source": migration["source"],
        "target": migration["target"],
        "state": render.state(migration["state"]),
        "priority": migration["priority"],
        "pool": f"{pool['percentage']} ({pool['percentageSource']}): requested {pool['requested']}, "
        f"granted {pool['granted']}, active {pool['active']}",
        "properties": json.dumps(migration["properties"]) if migration["properties"] else None,
        "options": json.dumps(migration["options"]) if migration["options"] else None,
        "error": migration["error"],
        "createdTime": migration["createdTime"],
        "startTime": migration["startTime"],
        "completeTime": migration["completeTime"],
    }
    out = render.console()
    out.print(render.pairs(summary))
    out.print(render.pairs(migration.get("progress") or {}, title="progress"))


def _option_value(text: str) -> Any:
    """JSON when it parses (numbers, true/false, lists), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise fail(f"--option {pair!r}: expected NAME=VALUE", USAGE)
        options[name] = _option_value(value)
    return options


@migrations_cli.command()
def create(
    kind: Annotated[str, typer.Option(metavar="files|disk", help="what to copy", show_default=False)],
    source: Annotated[
        str, typer.Option(metavar="PATH|URI", help="an absolute directory, or an NBD URI for disk", show_default=False)
    ],
    target: Annotated[
        str,
        typer.Option(metavar="PATH|URI", help="an absolute directory, an NBD URI or an image file", show_default=False),
    ],
    migration_id: Annotated[
        str | None, typer.Option("--id", metavar="ID", help="the id (generated when absent)")
    ] = None,
    priority: Annotated[str, typer.Option(metavar="LOW|NORMAL|HIGH", help="its priority")] = "NORMAL",
    percentage: Annotated[
        str | None, typer.Option(metavar="PERCENT", help="its own share of the pool, e.g. 13%")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", metavar="NAME=VALUE", help="a kind option (repeat); VALUE may be JSON"),
    ] = None,
    start: Annotated[bool, typer.Option("--start/--no-start", help="start it at once")] = True,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Create a migration (and start it, unless --no-start).

    Paths are the server's: give them absolute (a relative one is refused, not resolved here).
    """
    _absolute("--source", source)
    _absolute("--target", target)
    body: dict[str, Any] = {
        "kind": kind,
        "source": source,
        "target": target,
        "priority": priority,
        "options": _options(option or []),
        "autoStart": start,
    }
    if migration_id:
        body["migrationId"] = migration_id
    if percentage:
        body["properties"] = {SCAN_PERCENTAGE: percentage}
    with connect(url, token) as client:
        migration = client.request("POST", "/migrations", json=body)
    _report(migration, "created", as_json)


def _absolute(option: str, value: str) -> None:
    """A relative path would name a place in this shell's directory, which the server never sees."""
    if value.startswith("/") or "://" in value:
        return
    raise fail(
        f"{option} {value!r}: give an absolute path or an NBD URI; the server does not know this "
        "directory, so a relative path is not resolved against it",
        USAGE,
    )


@migrations_cli.command("set")
def set_fields(
    migration_id: IdArgument,
    priority: Annotated[str | None, typer.Option(metavar="LOW|NORMAL|HIGH", help="its new priority")] = None,
    percentage: Annotated[
        str | None, typer.Option(metavar="PERCENT", help="its own share of the pool, e.g. 13%; '' removes it")
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Change a migration's priority or pool share; applies live."""
    body: dict[str, Any] = {}
    if priority is not None:
        body["priority"] = priority
    if percentage is not None:
        body["properties"] = {SCAN_PERCENTAGE: percentage or None}
    if not body:
        raise fail("nothing to change: give --priority or --percentage", USAGE)
    with connect(url, token) as client:
        migration = client.request("PATCH", f"/migrations/{migration_id}", json=body)
    _report(migration, "changed", as_json)


def _report(migration: dict[str, Any], verb: str, as_json: bool) -> None:
    if as_json:
        render.print_json(migration)
        return
    pool = migration["pool"]
    line = render.state(migration["state"])
    line.stylize("bold")
    render.console().print(
        f"{verb} {migration['migrationId']}: ", line, f" (pool {pool['percentage']}, granted {pool['granted']})", sep=""
    )


#: What each action did, as the line printed after it.
_DONE = {"start": "started", "stop": "stopped", "resume": "resumed", "reset": "reset", "verify": "verifying"}


def _act(migration_id: str, action: str, url: str, token: str | None, as_json: bool) -> None:
    with connect(url, token) as client:
        migration = client.request("POST", f"/migrations/{migration_id}/{action}")
    _report(migration, _DONE[action], as_json)


@migrations_cli.command()
def start(
    migration_id: IdArgument, as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """Start a migration (again, as an incremental pass, when COMPLETED)."""
    _act(migration_id, "start", url, token, as_json)


@migrations_cli.command()
def stop(
    migration_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="the migration's id", show_default=False)
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="stop every SCHEDULED and RUNNING migration")] = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Stop a migration (units in flight finish first), or every one with --all."""
    if (migration_id is None) == (not all_):
        raise fail("give a migration id or --all, not both", USAGE)
    if migration_id is not None:
        _act(migration_id, "stop", url, token, as_json)
        return
    with connect(url, token) as client:
        stopped = client.request("POST", "/migrations/stop")
    if as_json:
        render.print_json(stopped)
        return
    for migration in stopped:
        _report(migration, "stopped", as_json=False)


@migrations_cli.command()
def resume(
    migration_id: IdArgument, as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """Continue a STOPPED or FAILED migration from its checkpoint."""
    _act(migration_id, "resume", url, token, as_json)


@migrations_cli.command()
def reset(
    migration_id: IdArgument, as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """Forget a migration's progress so that it scans again from the start."""
    _act(migration_id, "reset", url, token, as_json)


@migrations_cli.command()
def verify(
    migration_id: IdArgument, as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """Compare source and target of a migration that is not running."""
    _act(migration_id, "verify", url, token, as_json)


@migrations_cli.command()
def delete(migration_id: IdArgument, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Delete a migration's record (never its data); refused while SCHEDULED or RUNNING."""
    with connect(url, token) as client:
        client.request("DELETE", f"/migrations/{migration_id}")
    typer.echo(f"deleted {migration_id}")


migrations_cli.command()(watch)
migrations_cli.command()(failures)
migrations_cli.command()(verification)
