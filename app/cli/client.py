"""The HTTP side of the client commands: one connection to a running server, and its errors.

Every client command ends in one of these exit codes, so scripts can tell failures apart:

====  ==========================================================================
code  meaning
====  ==========================================================================
0     success
1     anything else: a server error (5xx), a watched migration that did not complete
2     usage: a bad option here, or a value the server refused (422)
3     not found (404): no such migration or property
4     conflict (409): the migration's state forbids the action
5     authentication (401: no or unknown token) or authorisation (403: role too weak)
6     the server cannot be reached
====  ==========================================================================

A server error is printed as one line on stderr: ``ferry: <status> <title>: <detail>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import httpx

DEFAULT_URL = "http://127.0.0.1:18080"
#: Seconds one request may take before the command gives up on the server.
TIMEOUT = 30.0

GENERIC, USAGE, NOT_FOUND, CONFLICT, AUTH, UNREACHABLE = 1, 2, 3, 4, 5, 6
_EXIT_BY_STATUS = {400: USAGE, 401: AUTH, 403: AUTH, 404: NOT_FOUND, 409: CONFLICT, 422: USAGE}

UrlOption = Annotated[str, typer.Option("--url", envvar="FERRY_URL", metavar="URL", help="the ferry server")]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="FERRY_TOKEN", metavar="TOKEN", help="bearer token (FERRY_TOKEN)", show_default=False
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print the server's JSON instead of a table")]


class ServerError(Exception):
    """The server answered with an error (a problem+json body, or something else)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status

    @property
    def exit_code(self) -> int:
        return _EXIT_BY_STATUS.get(self.status, GENERIC)


class Unreachable(Exception):
    """No answer from the server: refused, timed out, or not HTTP."""

    exit_code = UNREACHABLE


def _problem(response: httpx.Response) -> ServerError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        title = str(body.get("title") or response.reason_phrase)
        detail = str(body.get("detail") or "")
    else:
        title, detail = response.reason_phrase, response.text.strip()[:200]
    return ServerError(response.status_code, title, detail)


class FerryClient:
    """A thin wrapper of :class:`httpx.Client` that turns error answers into :class:`ServerError`."""

    def __init__(self, url: str, token: str | None = None, transport: httpx.BaseTransport | None = None) -> None:
        import httpx  # noqa: PLC0415 - only when a command talks to a server, not for --help

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT, transport=transport)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON body (None for an empty one); raises on any error answer."""
        import httpx  # noqa: PLC0415

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach {self.url}: {exc or type(exc).__name__}") from None
        if response.is_error:
            raise _problem(response)
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def close(self) -> None:
        self._http.close()


def fail(message: str, code: int) -> typer.Exit:
    """Print one line on stderr and return the Exit to raise."""
    typer.echo(f"ferry: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def connect(url: str, token: str | None) -> Iterator[FerryClient]:
    """A client for one command; server errors become one line on stderr and an exit code."""
    client = FerryClient(url, token)
    try:
        yield client
    except (ServerError, Unreachable) as exc:
        raise fail(str(exc), exc.exit_code) from None
    finally:
        client.close()
