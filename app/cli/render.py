"""How the client commands print: tables for people, ``--json`` for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import typer
from rich.console import Console, RenderableType
from rich.filesize import decimal
from rich.table import Table
from rich.text import Text

#: States in the colour an operator reads them by.
STATE_STYLES = {
    "RUNNING": "cyan",
    "SCHEDULED": "blue",
    "COMPLETED": "green",
    "FAILED": "bold red",
    "STOPPED": "yellow",
    "NONSCHEDULED": "dim",
}


#: Columns a table may take when stdout is not a terminal: in a pipe or a file nothing is cut, so
#: ``ferry migrations list | grep -c COMPLETED`` counts every row.
UNBOUNDED = 100_000


def console() -> Console:
    """A console on stdout, looked up when printing so tests that swap stdout see the output.

    On a terminal tables fit its width; anywhere else they are as wide as their content.
    """
    out = Console(highlight=False, soft_wrap=False)
    if out.is_terminal:
        return out
    return Console(highlight=False, soft_wrap=False, width=UNBOUNDED)


def print_json(body: Any) -> None:
    typer.echo(json.dumps(body, indent=2))


def size(value: Any) -> str:
    return decimal(int(value)) if isinstance(value, int | float) else "-"


def speed(value: Any) -> str:
    return f"{decimal(int(value))}/s" if isinstance(value, int | float) else "-"


def duration(seconds: Any) -> str:
    """``3725`` -> ``1h02m``; ``None`` (unknown) -> ``-``."""
    if not isinstance(seconds, int | float):
        return "-"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def percent(value: Any) -> str:
    return f"{value:.1f}%" if isinstance(value, int | float) else "-"


def state(value: str) -> Text:
    return Text(value, style=STATE_STYLES.get(value, ""))


def _cell(value: Any) -> RenderableType:
    """Text as it is: a path or an error message with brackets is not rich markup."""
    if isinstance(value, Text | Table):
        return value
    return Text("-" if value is None else str(value))


def table(columns: Iterable[str], rows: Iterable[Iterable[Any]], title: str | None = None) -> Table:
    grid = Table(*columns, title=title, title_justify="left", header_style="bold")
    for row in rows:
        grid.add_row(*(_cell(cell) for cell in row))
    return grid


def pairs(items: Mapping[str, Any], title: str | None = None) -> Table:
    """A two-column table of names and values."""
    grid = Table(show_header=False, title=title, title_justify="left", box=None, padding=(0, 2, 0, 0))
    grid.add_column(style="bold")
    grid.add_column()
    for name, value in items.items():
        grid.add_row(name, _cell(value))
    return grid
