"""Help that names values, not Python types.

Typer 0.29 prints an argument's type after its name (``ID <str>``) even when the argument has a
metavar, which options honour. Arguments here always have one, so they show it alone, as options
do; with ``rich_markup_mode=None`` on every app, flags show no ``<bool>`` either.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument


def _metavar_only(self: TyperArgument, ctx: Any) -> str | None:
    return None if self.metavar is not None else TyperArgument.display_type(self, ctx)


def install() -> None:
    TyperArgument.display_type_rich = _metavar_only  # type: ignore[method-assign,assignment]
