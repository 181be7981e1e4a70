"""``ferry``: serve the API, manage the database schema, and talk to a running server.

``serve`` and ``db`` act on this machine; ``migrations``, ``config`` and ``stats`` are HTTP
clients of a server (``--url``, ``FERRY_URL``; ``FERRY_TOKEN``): see :mod:`app.cli.client`
for their exit codes.

Only typer is imported here: the server side (FastAPI, SQLAlchemy, Alembic, settings) is imported
by the commands that use it, so ``ferry --help`` and the client commands start in a fraction of
the time (``tests/cli/test_scripts.py`` keeps it so).
"""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli import helptext
from app.cli.config import config_cli
from app.cli.migrations import migrations_cli
from app.cli.stats import stats

helptext.install()
cli = typer.Typer(
    help="ferry: data migrations of directory trees and NBD disks.", no_args_is_help=True, rich_markup_mode=None
)
db_cli = typer.Typer(help="The database schema (Alembic).", no_args_is_help=True, rich_markup_mode=None)
cli.add_typer(db_cli, name="db")
cli.add_typer(migrations_cli, name="migrations")
cli.add_typer(config_cli, name="config")
cli.command()(stats)


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(metavar="ADDRESS", help="address to listen on (FERRY_HOST)")] = None,
    port: Annotated[int | None, typer.Option(metavar="PORT", help="port (FERRY_PORT)")] = None,
) -> None:
    """Upgrade the schema, then serve the API and run migrations until SIGTERM."""
    from pydantic import ValidationError  # noqa: PLC0415

    from app.api.security import InsecureBind, check_bind  # noqa: PLC0415 - server side, see the module
    from app.cli.serving import run_server  # noqa: PLC0415
    from app.db import schema  # noqa: PLC0415
    from app.observability.logging import configure  # noqa: PLC0415
    from app.settings import Settings, get_settings  # noqa: PLC0415

    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    try:
        settings = Settings(**overrides) if overrides else get_settings()  # type: ignore[arg-type]
    except ValidationError as exc:
        for error in exc.errors():
            name = "FERRY_" + "_".join(str(part) for part in error["loc"]).upper()
            typer.echo(f"ferry: {name}={error.get('input')!s}: {error['msg']}", err=True)
        raise typer.Exit(2) from None
    configure(settings.log_level, settings.log_format)
    try:
        check_bind(settings)
    except InsecureBind as exc:
        typer.echo(f"ferry: {exc}", err=True)
        raise typer.Exit(2) from None
    from app.cli.serving import PortInUse, bind  # noqa: PLC0415 - only when serving
    from app.db.sole import DatabaseInUse, SoleNodeLock, sqlite_path  # noqa: PLC0415

    sqlite = sqlite_path(settings.effective_database_url)
    if sqlite is not None:
        sqlite.parent.mkdir(parents=True, exist_ok=True)
        probe = SoleNodeLock(sqlite)
        try:
            probe.acquire(lambda: _sqlite_holder(settings.effective_database_url))
        except DatabaseInUse as exc:
            typer.echo(f"ferry: {exc}", err=True)
            raise typer.Exit(2) from None
        probe.release()
    try:
        bind(settings.host, settings.port).close()
    except PortInUse as exc:
        typer.echo(f"ferry: {exc}", err=True)
        raise typer.Exit(2) from None
    schema.upgrade(settings.effective_database_url)
    from app.api.app import create_app  # noqa: PLC0415 - the app is built only when serving
    from app.engines.registry import serving_engines  # noqa: PLC0415

    run_server(create_app(settings, serving_engines()), settings.host, settings.port)


def _sqlite_holder(url: str) -> str:
    from app.db.nodes import holder_text  # noqa: PLC0415
    from app.db.session import Database  # noqa: PLC0415

    database = Database(url)
    try:
        return holder_text(database)
    finally:
        database.dispose()


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the schema to the newest revision."""
    from app.db import schema  # noqa: PLC0415
    from app.settings import get_settings  # noqa: PLC0415

    settings = get_settings()
    schema.upgrade(settings.effective_database_url)
    typer.echo(f"database at {schema.head_revision()}")


@db_cli.command("current")
def db_current() -> None:
    """Print the schema revision of the database, and the newest one."""
    from app.db import schema  # noqa: PLC0415
    from app.db.session import Database  # noqa: PLC0415
    from app.settings import get_settings  # noqa: PLC0415

    database = Database(get_settings().effective_database_url)
    typer.echo(f"current: {schema.current_revision(database.engine)}  head: {schema.head_revision()}")
    database.dispose()


def main() -> None:
    cli()
