"""The OpenAPI document is complete: every operation and parameter described, bodies typed per kind,
examples given, and each operation listing only the errors it can answer."""

from __future__ import annotations

from typing import Any

import pytest

from tests.servers import LiveServer

FILES_PROGRESS = {
    "filesScanned", "directoriesScanned", "bytesScanned", "filesCopied", "bytesCopied", "filesSkipped",
    "filesDeleted", "directoriesDeleted", "filesFailed", "filesVanished", "pendingRegions", "bytesTotal",
    "percentComplete", "bytesPerSecond", "etaSeconds",
}  # fmt: skip
DISK_PROGRESS = {
    "bytesTotal", "bytesCopied", "bytesZeroed", "bytesSkipped", "extentsTotal", "extentsDone", "retries",
    "percentComplete", "bytesPerSecond", "etaSeconds",
}  # fmt: skip
FILES_OPTIONS = {"scanType", "actionPolicy", "targetMatch", "exclusions", "durability", "verifyContent"}
DISK_OPTIONS = {"mode", "dirtyBitmap", "changedExtents", "coalesceGap", "chunkSize", "maxRetries", "retryDelay"}


@pytest.fixture
def document(server: LiveServer) -> dict[str, Any]:
    response = server.client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(document["components"]["schemas"][name])


def errors_of(document: dict[str, Any], operation_id: str) -> set[int]:
    for _, _, operation in operations(document):
        if operation["operationId"] == operation_id:
            return {int(code) for code in operation["responses"] if code[0] in "45"}
    raise AssertionError(f"no operation {operation_id}")


def test_every_operation_and_parameter_is_described(document: dict[str, Any]) -> None:
    """Each operation has a summary and a description; each parameter, and each field of every body, a
    description of its own."""
    found = operations(document)
    assert len(found) >= 24
    for path, method, operation in found:
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        assert len(operation.get("description", "")) > 40, where
        for parameter in operation.get("parameters", []):
            assert parameter.get("description"), f"{where} parameter {parameter['name']}"
    for name, body in document["components"]["schemas"].items():
        for field, spec in body.get("properties", {}).items():
            if name not in ("Problem",) and name.endswith(("Migration", "Create", "Options", "Progress", "Share")):
                assert spec.get("description"), f"{name}.{field}"


def test_progress_and_options_are_typed_per_kind(document: dict[str, Any]) -> None:
    """Migration is a oneOf of a files and a disk variant told apart by kind, whose progress carries the
    SPEC's fields for that kind, as integers or numbers, and whose options are the kind's options."""
    migration = schema(document, "Migration")
    assert migration["discriminator"]["propertyName"] == "kind"
    assert set(migration["discriminator"]["mapping"]) == {"files", "disk"}
    variants = {ref["$ref"].rsplit("/", 1)[1] for ref in migration["oneOf"]}
    assert variants == {"FilesMigration", "DiskMigration"}
    for variant, progress, options, fields, names in (
        ("FilesMigration", "FilesProgress", "FilesOptions", FILES_PROGRESS, FILES_OPTIONS),
        ("DiskMigration", "DiskProgress", "DiskOptions", DISK_PROGRESS, DISK_OPTIONS),
    ):
        properties = schema(document, variant)["properties"]
        assert properties["progress"]["$ref"].endswith("/" + progress)
        assert properties["options"]["$ref"].endswith("/" + options)
        typed = schema(document, progress)["properties"]
        assert set(typed) == fields
        for field, spec in typed.items():
            kinds = {spec.get("type")} | {choice.get("type") for choice in spec.get("anyOf", [])}
            assert kinds & {"integer", "number"}, f"{progress}.{field}: {spec}"
        assert names <= set(schema(document, options)["properties"])
    create = schema(document, "MigrationCreate")
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in create["oneOf"]} == {"FilesMigrationCreate", "DiskMigrationCreate"}
    scan = schema(document, "FilesOptions")["properties"]["scanType"]
    assert scan["enum"] == ["PARALLEL", "DEPTH_FIRST"]


def test_examples_include_the_spec_and_readme_commands(document: dict[str, Any]) -> None:
    """The SPEC's two property commands and the README's PATCH are in the descriptions; the create bodies
    carry an example per kind."""
    text = "\n".join(op.get("description", "") for _, _, op in operations(document))
    for command in (
        "curl -X PUT 'http://127.0.0.1:18080/configuration/property?key=global.scan.limit&value=50' -H 'accept: */*'",
        "curl -X PUT 'http://127.0.0.1:18080/configuration/property?key=migration.priority.pool.allocations"
        "&value=7%25%2C36%25%2C49%25' -H 'accept: */*'",
        "curl -X PATCH 'http://127.0.0.1:18080/migrations/projects?migration.parallel.scan.percentage=13%25'",
    ):
        assert command in text
    for variant in ("FilesMigrationCreate", "DiskMigrationCreate"):
        assert schema(document, variant)["examples"]


def test_each_operation_lists_only_the_errors_it_can_give(document: dict[str, Any]) -> None:
    """Reads without parameters list only 401; writes add 403; 404, 409 and 422 appear only where a
    missing id, a state or a value can cause them; the health probes list none."""
    assert errors_of(document, "listProperties") == {401}
    assert errors_of(document, "scannerPoolStats") == {401}
    assert errors_of(document, "metrics") == {401}
    assert errors_of(document, "health") == set()
    assert errors_of(document, "ready") == {503}
    assert errors_of(document, "getMigration") == {401, 404, 422}
    assert errors_of(document, "listMigrations") == {401, 422}
    assert errors_of(document, "createMigration") == {401, 403, 409, 422}
    assert errors_of(document, "setProperty") == {401, 403, 404, 422}
    assert errors_of(document, "stopMigration") == {401, 403, 404, 409, 422}
    assert errors_of(document, "addPendingRegion") == {401, 403, 404, 422}
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for _, _, operation in operations(document):
        for code, response in operation["responses"].items():
            if code[0] == "4":
                assert response["content"] == problem, operation["operationId"]
