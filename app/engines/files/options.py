"""The options of a ``files`` migration (SPEC section 3): validation, defaults, normalisation.

Option names are matched case-insensitively and returned in their SPEC spelling; enum values are
upper-cased. ``durability`` says what reaches stable storage, and when:

* ``checkpoint`` (default): the target filesystem is synced (``syncfs``) once before each
  checkpoint records files and directories as done, and before COMPLETED. A power cut loses at
  most the work since the last checkpoint: the next run treats every target file changed after
  that checkpoint's sync as not copied and copies it again. No ``fsync`` per file.
* ``file``: ``fsync`` each file before its rename and each directory once it is done, so a power
  cut leaves either the old or the whole new file under the real name; the slowest.
* ``none``: leave flushing to the kernel; still atomic against a crash of ferry itself (a
  half-written file is never renamed), but a power cut may lose or empty files that a checkpoint
  already recorded as done, and nothing copies them again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from app.engines.base import InvalidField
from app.engines.files.exclude import Excluder


class ScanType(StrEnum):
    PARALLEL = "PARALLEL"
    DEPTH_FIRST = "DEPTH_FIRST"


class ActionPolicy(StrEnum):
    OVERWRITE = "OVERWRITE"
    SKIP_IF_SIZE_MATCH = "SKIP_IF_SIZE_MATCH"
    CHECKSUM = "CHECKSUM"


class Durability(StrEnum):
    CHECKPOINT = "checkpoint"
    FILE = "file"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class FilesOptions:
    scan_type: ScanType = ScanType.PARALLEL
    action_policy: ActionPolicy = ActionPolicy.OVERWRITE
    target_match: bool = False
    exclusions: tuple[str, ...] = ()
    durability: Durability = Durability.CHECKPOINT
    verify_content: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "scanType": self.scan_type.value,
            "actionPolicy": self.action_policy.value,
            "targetMatch": self.target_match,
            "exclusions": list(self.exclusions),
            "durability": self.durability.value,
            "verifyContent": self.verify_content,
        }

    @property
    def excluder(self) -> Excluder:
        return Excluder(self.exclusions)

    @property
    def compares_content(self) -> bool:
        return self.verify_content or self.action_policy is ActionPolicy.CHECKSUM


_E = TypeVar("_E", bound=StrEnum)

_NAMES = {name.lower(): name for name in FilesOptions().as_dict()}


def _enum(kind: type[_E], name: str, value: Any) -> _E:
    text = value.strip() if isinstance(value, str) else None
    choices = [member.value for member in kind]
    for member in kind:
        if text is not None and member.value.lower() == text.lower():
            return member
    raise InvalidField(f"options.{name}", f"{value!r} is not one of {', '.join(choices)}")


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidField(f"options.{name}", f"{value!r} is not a boolean (true or false)")


def _exclusions(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(p, str) and p.strip() for p in value):
        raise InvalidField("options.exclusions", "expected a list of non-empty glob patterns")
    patterns = tuple(p.strip() for p in value)
    try:
        Excluder(patterns)
    except ValueError as exc:
        raise InvalidField("options.exclusions", str(exc)) from exc
    return patterns


def parse_options(raw: Mapping[str, Any] | None) -> FilesOptions:
    """Validate ``raw`` and return typed options; raise InvalidField naming ``options.<name>``."""
    given: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        name = _NAMES.get(str(key).lower())
        if name is None:
            known = ", ".join(_NAMES.values())
            raise InvalidField(f"options.{key}", f"unknown option for a files migration; known: {known}")
        given[name] = value
    default = FilesOptions()
    return FilesOptions(
        scan_type=_enum(ScanType, "scanType", given.get("scanType", default.scan_type.value)),
        action_policy=_enum(ActionPolicy, "actionPolicy", given.get("actionPolicy", "OVERWRITE")),
        target_match=_bool("targetMatch", given.get("targetMatch", False)),
        exclusions=_exclusions(given.get("exclusions", [])),
        durability=_enum(Durability, "durability", given.get("durability", default.durability.value)),
        verify_content=_bool("verifyContent", given.get("verifyContent", False)),
    )
