"""The systemd unit and its environment file agree with ferry's commands and settings."""

from __future__ import annotations

import configparser
import re

from tests.deploy.conftest import DEFAULT_DRAIN, DEPLOY, SETTINGS_ENV

SYSTEMD = DEPLOY / "systemd"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((SYSTEMD / "ferry.service").read_text())
    return parser


def env_file() -> dict[str, str]:
    pairs = {}
    for line in (SYSTEMD / "ferry.env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", text)
    assert match, text
    return float(match[1]) * (60 if match[2] == "min" else 1)


def test_unit_upgrades_then_serves() -> None:
    """The schema is upgraded before the server starts, both with the venv's ferry and the env file."""
    service = unit()["Service"]
    assert service["ExecStartPre"].split()[1:] == ["db", "upgrade"]
    assert service["ExecStart"].split()[1:] == ["serve"]
    assert service["ExecStartPre"].split()[0] == service["ExecStart"].split()[0] == "/opt/ferry/.venv/bin/ferry"
    assert service["EnvironmentFile"] == "/etc/ferry/ferry.env"
    assert service["User"] == "ferry"
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_unit_is_hardened_and_can_write_where_ferry_writes() -> None:
    """A read-only system except the data dir and the allowed roots; stop waits longer than the drain."""
    service = unit()["Service"]
    for key, value in {"ProtectSystem": "strict", "NoNewPrivileges": "yes", "PrivateTmp": "yes"}.items():
        assert service[key] == value
    assert service["CapabilityBoundingSet"] == ""
    writable = set(service["ReadWritePaths"].split())
    env = env_file()
    assert {env["FERRY_DATA_DIR"], *env["FERRY_ALLOWED_ROOTS"].split(":")} <= writable
    assert f"/var/lib/{service['StateDirectory']}" == env["FERRY_DATA_DIR"] == service["WorkingDirectory"]
    drain = float(env.get("FERRY_DRAIN_TIMEOUT", DEFAULT_DRAIN))
    assert seconds(service["TimeoutStopSec"]) >= drain + 10


def test_env_file_names_are_settings() -> None:
    """Every name in the example environment file is a setting ferry reads; beyond loopback, with tokens."""
    env = env_file()
    assert set(env) <= SETTINGS_ENV, set(env) - SETTINGS_ENV
    assert env["FERRY_HOST"] != "127.0.0.1"
    assert env["FERRY_TOKENS"]
    assert env["FERRY_DATABASE_URL"].startswith("postgresql+psycopg://")
