"""What a migration's ``options`` and ``progress`` hold, per kind, for the OpenAPI document.

The engines validate options and report progress themselves (``app.engines.files.options``,
``app.engines.disk.options``); these models only describe them, field by field, with the SPEC's
names and defaults. Options are matched in any case on input; every model here accepts more
than it lists, as the engines' JSON may carry more.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Wire(BaseModel):
    """A body with the SPEC's camelCase names on the wire."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)


class FilesOptions(Wire):
    """Options of a ``files`` migration; names are matched in any case."""

    scan_type: Literal["PARALLEL", "DEPTH_FIRST"] = Field(
        default="PARALLEL", description="PARALLEL: breadth-first, any worker lists any pending directory"
    )
    action_policy: Literal["OVERWRITE", "SKIP_IF_SIZE_MATCH", "CHECKSUM"] = Field(
        default="OVERWRITE",
        description="when a target file is rewritten: OVERWRITE when size or mtime differ, SKIP_IF_SIZE_MATCH, "
        "CHECKSUM when contents differ",
    )
    target_match: bool = Field(default=False, description="delete target entries absent from the source")
    exclusions: list[str] = Field(
        default_factory=list, description="glob patterns on the relative path (*.tmp, logs/**); never deleted"
    )
    durability: Literal["file", "none"] = Field(
        default="file", description="file: fsync each file before its rename; none: leave it to the OS"
    )
    verify_content: bool = Field(default=False, description="verification compares contents, not only sizes")


class Extent(Wire):
    offset: int = Field(ge=0, description="bytes from the start of the disk")
    length: int = Field(ge=1, description="bytes")


class DiskOptions(Wire):
    """Options of a ``disk`` migration; sizes take a unit on input (``1MiB``) and read back in bytes."""

    mode: Literal["FULL", "INCREMENTAL"] = Field(
        default="FULL", description="INCREMENTAL copies only what changedExtents or dirtyBitmap name (implied by them)"
    )
    dirty_bitmap: str | None = Field(default=None, description="name of a QEMU dirty bitmap the source exports")
    changed_extents: list[Extent] | None = Field(
        default=None, description="changed ranges, as changed-block tracking reports them: copy only those"
    )
    coalesce_gap: int | str = Field(default=1048576, description="merge extents closer than this (bytes, or 1MiB)")
    chunk_size: int | str = Field(
        default=4194304, description="unit of planning, retry and checkpoint (bytes, or 4MiB); at most 32MiB"
    )
    max_retries: int = Field(default=3, description="retries of a failed chunk")
    retry_delay: float = Field(default=1.0, description="seconds before the first retry; each retry doubles it")
    verify: bool = Field(default=False, description="read both sides back and compare digests before COMPLETED")
    parallel: bool = Field(default=True, description="false: one connection, whatever the grant")


class Rates(Wire):
    percent_complete: float | None = Field(
        default=None, description="work done of the work known, 0 to 100; null while unknown"
    )
    bytes_per_second: int = Field(default=0, description="bytes transferred per second lately (never holes or zeroes)")
    eta_seconds: int | None = Field(default=None, description="seconds left at the current speed; null while unknown")


class FilesProgress(Rates):
    """Progress of a ``files`` migration (SPEC section 3)."""

    files_scanned: int = Field(default=0, description="source files listed")
    directories_scanned: int = Field(default=0, description="source directories listed")
    bytes_scanned: int = Field(default=0, description="bytes of the source files listed")
    files_copied: int = Field(default=0, description="files written to the target")
    bytes_copied: int = Field(default=0, description="bytes written to the target")
    files_skipped: int = Field(default=0, description="files already equal on the target")
    files_deleted: int = Field(default=0, description="target files deleted by targetMatch")
    directories_deleted: int = Field(default=0, description="target directories deleted by targetMatch")
    files_failed: int = Field(default=0, description="entries that could not be copied: GET .../failures")
    files_vanished: int = Field(default=0, description="source entries that vanished during the pass")
    pending_regions: int = Field(default=0, description="directories waiting to be listed")
    bytes_total: int = Field(default=0, description="bytes found so far (all of them once the scan is done)")


class DiskProgress(Rates):
    """Progress of a ``disk`` migration (SPEC section 3)."""

    bytes_total: int = Field(default=0, description="size of the part of the disk to copy")
    bytes_copied: int = Field(default=0, description="bytes of data read and written")
    bytes_zeroed: int = Field(default=0, description="bytes of zero runs written as zeroes, not data")
    bytes_skipped: int = Field(default=0, description="bytes of holes, or already zero on the target")
    extents_total: int = Field(default=0, description="extents planned")
    extents_done: int = Field(default=0, description="extents finished and checkpointed")
    retries: int = Field(default=0, description="chunks retried after an error")
