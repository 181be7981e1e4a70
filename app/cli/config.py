"""``ferry config ...``: the runtime properties (SPEC section 2), changed without a restart."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from app.cli import render
from app.cli.client import DEFAULT_URL, JsonOption, TokenOption, UrlOption, connect

config_cli = typer.Typer(
    help="Runtime properties: the pool's size and shares, limits, bandwidth.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

KeyArgument = Annotated[
    str, typer.Argument(metavar="KEY", help="a property key, e.g. global.scan.limit", show_default=False)
]
PATH = "/configuration/property"


def _show(prop: dict[str, Any], as_json: bool) -> None:
    if as_json:
        render.print_json(prop)
        return
    note = "" if prop["isDefault"] else f"  (default {prop['defaultValue']})"
    typer.echo(f"{prop['key']} = {prop['value']}{note}")


@config_cli.command("list")
def list_properties(as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Every property with its value, default and meaning."""
    with connect(url, token) as client:
        props = client.get("/configuration/properties")
    if as_json:
        render.print_json(props)
        return
    rows = ([p["key"], p["value"], "" if p["isDefault"] else p["defaultValue"], p["description"]] for p in props)
    render.console().print(render.table(["KEY", "VALUE", "DEFAULT (when changed)", "MEANING"], rows))


@config_cli.command()
def get(key: KeyArgument, as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Print one property."""
    with connect(url, token) as client:
        _show(client.get(PATH, key=key), as_json)


@config_cli.command("set")
def set_property(
    key: KeyArgument,
    value: Annotated[
        str, typer.Argument(metavar="VALUE", help="the new value, e.g. 50 or 7%,36%,49%", show_default=False)
    ],
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Set a property; running migrations follow within a second (needs an admin token)."""
    with connect(url, token) as client:
        _show(client.request("PUT", PATH, params={"key": key, "value": value}), as_json)


@config_cli.command()
def reset(
    key: KeyArgument, as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """Return a property to its default (needs an admin token)."""
    with connect(url, token) as client:
        _show(client.request("DELETE", PATH, params={"key": key}), as_json)
