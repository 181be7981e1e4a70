"""The Dockerfile, read statically (no Docker engine here): it agrees with ferry's port, routes,
settings and layout."""

from __future__ import annotations

import json
import re

from tests.deploy.conftest import DEFAULT_PORT, ROOT, SETTINGS_ENV


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def stage(name: str) -> list[tuple[str, str]]:
    """The instructions of one build stage."""
    current, found = "", []
    for instruction, args in instructions():
        if instruction == "FROM":
            current = args.split()[-1]
        elif current == name:
            found.append((instruction, args))
    return found


def args_of(instruction: str, stage_name: str = "run") -> list[str]:
    return [args for name, args in stage(stage_name) if name == instruction]


def test_bookworm_slim_with_libnbd_from_apt() -> None:
    """Debian bookworm slim, Python and libnbd's bindings from apt, a venv that sees them."""
    froms = [args for name, args in instructions() if name == "FROM"]
    assert froms[0].startswith("debian:bookworm-slim ")
    assert "python3-libnbd" in " ".join(args for name, args in stage("base") if name == "RUN")
    build = " ".join(args for name, args in stage("build") if name == "RUN")
    assert "python3 -m venv --system-site-packages /opt/ferry/.venv" in build
    assert "pip install" in build
    assert " -e ." in build


def test_migrations_stay_beside_app() -> None:
    """app/db/schema.py finds Alembic's scripts beside app/: both are copied to the same root."""
    copies = {args.split()[0]: args.split()[1] for name, args in stage("build") if name == "COPY"}
    assert copies["app"] == "./app"
    assert copies["migrations"] == "./migrations"
    assert ("WORKDIR", "/opt/ferry") in stage("build")
    assert "--from=build /opt/ferry /opt/ferry" in args_of("COPY")


def test_port_healthcheck_and_command(routes: frozenset[str]) -> None:
    """EXPOSE is ferry's port; HEALTHCHECK asks /healthz (a real, open route); CMD is `ferry serve`."""
    assert args_of("EXPOSE") == [str(DEFAULT_PORT)]
    (healthcheck,) = args_of("HEALTHCHECK")
    path = re.search(r"https?://127\.0\.0\.1:[^/]+(/\w+)", healthcheck)
    assert path
    assert path[1] == "/healthz"
    assert path[1] in routes
    assert str(DEFAULT_PORT) in healthcheck
    assert json.loads(args_of("CMD")[0]) == ["ferry", "serve"]


def test_non_root_and_settings() -> None:
    """Runs as a numeric non-root user; every ENV FERRY_* is a setting; the data dir is a volume."""
    (user,) = args_of("USER")
    assert user.split(":")[0] not in ("0", "root")
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(args_of("ENV"))))
    ferry = {name for name in env if name.startswith("FERRY_")}
    assert ferry <= SETTINGS_ENV, ferry - SETTINGS_ENV
    assert env["FERRY_PORT"] == str(DEFAULT_PORT)
    assert json.loads(args_of("VOLUME")[0]) == [env["FERRY_DATA_DIR"]]
    assert "/opt/ferry/.venv/bin" in env["PATH"]


def test_dockerignore_keeps_what_the_build_copies() -> None:
    """Nothing the Dockerfile copies is ignored, and the local venv and database never enter the context."""
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()}
    copied = {part for name, args in stage("build") if name == "COPY" for part in args.split()[:-1]}
    assert copied == {"pyproject.toml", "README.md", "alembic.ini", "app", "migrations"}
    assert not copied & ignored
    assert {".venv", "var", ".git", ".env"} <= ignored
