"""Boot-time settings, read once from the environment (``FERRY_*``) and an optional ``.env``.

These never change while the process runs. Knobs operators turn at run time live in the
database behind ``/configuration/property`` (see :mod:`app.policy.properties`).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ROLES = ("admin", "operator", "viewer")


def generated_node_id() -> str:
    """Host name, process id and a random part: unique per process, readable in a listing."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FERRY_", env_file=".env", extra="ignore", frozen=True)

    data_dir: Path = Path("./var")
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=18080, ge=1, le=65535)
    #: Colon-separated directories that files sources/targets and disk file targets must lie in.
    allowed_roots: Annotated[tuple[Path, ...], NoDecode] = ()
    #: ``role:token`` pairs, comma-separated.
    tokens: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    #: This node's name in the cluster (SPEC section 8); unique per process unless set.
    node_id: str = Field(default_factory=generated_node_id, min_length=1, max_length=255)
    #: Seconds without a heartbeat after which a node is dead and its migrations go elsewhere.
    node_lease: float = Field(default=15.0, ge=3.0, le=3600.0)
    #: Seconds SIGTERM waits for units in flight before it gives up on them.
    drain_timeout: float = 30.0
    #: How much nicer (lower CPU priority) than the server its copy helper processes run.
    helper_nice: int = Field(default=10, ge=0, le=19)
    log_format: str = "auto"  # auto | json | console
    log_level: str = "INFO"

    @field_validator("allowed_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(Path(part) for part in value.split(":") if part.strip())
        return value

    @field_validator("tokens", mode="before")
    @classmethod
    def _parse_tokens(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        tokens: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in value.split(","))):
            role, sep, token = pair.partition(":")
            if not sep or role not in ROLES or not token:
                raise ValueError(f"FERRY_TOKENS entry {pair!r} is not role:token with role in {ROLES}")
            tokens[token] = role
        return tokens

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'ferry.db').resolve()}"

    @property
    def effective_allowed_roots(self) -> tuple[Path, ...]:
        roots = self.allowed_roots or (self.data_dir,)
        return tuple(root.resolve() for root in roots)

    @property
    def binds_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


@lru_cache
def get_settings() -> Settings:
    return Settings()
