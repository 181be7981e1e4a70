"""``/migrations``: define, read, change and act on migrations (SPEC section 3).

Each operation's docstring is its description in the OpenAPI document (``/docs``), with the curl
commands of the SPEC and the README as examples.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response, status

from app.api.deps import ServicesDep
from app.api.problems import errors
from app.api.schemas import (
    Discrepancy,
    Failure,
    Failures,
    Migration,
    MigrationCreate,
    MigrationPatch,
    PoolShare,
    Verification,
)
from app.errors import InvalidValue
from app.policy.percent import format_percent
from app.policy.properties import SCAN_PERCENTAGE
from app.policy.states import State
from app.services.jobs import JobDefinition, JobView, parse_priority, parse_properties

router = APIRouter(tags=["migrations"])

JobId = Annotated[
    str, Path(description="the migration's id (1-128 of A-Za-z0-9._-)", max_length=128, examples=["projects"])
]
Percentage = Query(
    default=None,
    alias=SCAN_PERCENTAGE,
    max_length=64,
    description="per-migration share of the pool, 0 < p <= 100 ('%' optional, sent as %25); empty removes it",
    examples=["13%"],
)
PRIORITY = "LOW, NORMAL or HIGH, any case"
#: The errors of an action on one migration: unknown id, a state that forbids it, a bad parameter.
ACTION_ERRORS = errors(404, 409, 422)
#: Query parameters of PUT that are fields, not options.
_PUT_FIELDS = {"kind", "source", "target", "priority", "autoStart", "migrationId", SCAN_PERCENTAGE}


def to_wire(view: JobView) -> Migration:
    row = view.row
    properties = {SCAN_PERCENTAGE: format_percent(row.scan_percentage)} if row.scan_percentage else {}
    return Migration(
        migration_id=row.id,
        kind=row.kind,
        source=row.source,
        target=row.target,
        priority=row.priority,
        properties=properties,
        options=dict(row.options),
        state=State(row.state),
        progress=view.progress,
        error=view.notice or row.error,
        created_time=row.created_at,
        start_time=row.started_at,
        complete_time=row.completed_at,
        failures=_failures(row.checkpoint),
        node=view.node,
        verification=view.verification,
        pool=PoolShare(
            percentage=format_percent(view.grant.percentage),
            percentage_source=view.grant.source,
            requested=view.grant.requested,
            granted=view.grant.granted,
            active=view.active,
        ),
    )


def _failures(checkpoint: dict[str, Any] | None) -> list[Failure]:
    """What the engine recorded as not copied, as of its last checkpoint (at most seconds old)."""
    entries = (checkpoint or {}).get("failures") or []
    return [Failure.model_validate(e) for e in entries if isinstance(e, dict) and "path" in e and "reason" in e]


def _definition(body: MigrationCreate) -> JobDefinition:
    return JobDefinition(
        kind=body.kind,
        source=body.source,
        target=body.target,
        priority=parse_priority(body.priority),
        scan_percentage=parse_properties(body.properties),
        options=body.options,
    )


@router.post(
    "/migrations",
    status_code=status.HTTP_201_CREATED,
    operation_id="createMigration",
    summary="Create a migration",
    responses=errors(409, 422),
)
def create_migration(services: ServicesDep, body: MigrationCreate) -> Migration:
    """Define a migration from a JSON body and, unless `autoStart` is false, start it at once
    (it waits in SCHEDULED while `migration.max.running.migrations` are RUNNING). 409 when
    `migrationId` exists already; 422 names the field ferry refuses.

    ```sh
    curl -X POST http://127.0.0.1:18080/migrations -H 'content-type: application/json' -d '{
      "migrationId": "projects", "kind": "files",
      "source": "/srv/ferry/var/tour/projects", "target": "/srv/ferry/var/tour/copy",
      "priority": "HIGH", "options": {"targetMatch": true}}'
    ```
    """
    auto_start = True if body.auto_start is None else body.auto_start
    view, _ = services.jobs.create(body.migration_id, _definition(body), auto_start=auto_start, idempotent=False)
    return to_wire(view)


@router.put(
    "/migrations/{job_id}",
    status_code=status.HTTP_201_CREATED,
    operation_id="putMigration",
    summary="Create a migration with this id",
    responses={200: {"model": Migration, "description": "the same definition existed already"}, **errors(409, 422)},
)
def put_migration(
    services: ServicesDep,
    request: Request,
    response: Response,
    job_id: JobId,
    body: Annotated[MigrationCreate | None, Body()] = None,
    kind: Annotated[str | None, Query(max_length=16, description="files or disk (without a body)")] = None,
    source: Annotated[
        str | None, Query(max_length=4096, description="a directory (files) or an NBD URI (disk), percent-encoded")
    ] = None,
    target: Annotated[
        str | None, Query(max_length=4096, description="a directory (files); an NBD URI or an image file (disk)")
    ] = None,
    priority: Annotated[str | None, Query(max_length=16, description=PRIORITY + "; default NORMAL")] = None,
    auto_start: Annotated[bool | None, Query(alias="autoStart", description="start at once (default false)")] = None,
    percentage: str | None = Percentage,
) -> Migration:
    """Define a migration under the id in the path, from a JSON body or, in the original's style,
    from query parameters: `kind`, `source`, `target`, `priority`, `autoStart`,
    `migration.parallel.scan.percentage`, and any other key as one of the kind's options
    (`targetMatch=true`, `chunkSize=8MiB`). Not started unless `autoStart=true`. The same
    definition again answers 200; a different one for an existing id 409.

    In a query a `+` decodes as a space: write an NBD URI's `+` as `%2B` and its `?`/`&` as
    `%3F`/`%26`.

    ```sh
    curl -X PUT 'http://127.0.0.1:18080/migrations/vm42?kind=disk&source=nbd%2Bunix:///%3Fsocket%3D/srv/ferry/var/tour/vm42.sock&target=/srv/ferry/var/tour/vm42.raw'
    ```
    """
    if body is None:
        body = _body_from_query(request, kind, source, target, priority, percentage)
    elif body.migration_id is not None and body.migration_id != job_id:
        raise InvalidValue("migrationId", f"{body.migration_id!r} differs from the id in the path {job_id!r}")
    start = auto_start if auto_start is not None else bool(body.auto_start)
    view, created = services.jobs.create(job_id, _definition(body), auto_start=start, idempotent=True)
    if not created:
        response.status_code = status.HTTP_200_OK
    return to_wire(view)


def _body_from_query(
    request: Request,
    kind: str | None,
    source: str | None,
    target: str | None,
    priority: str | None,
    percentage: str | None,
) -> MigrationCreate:
    for name, value in (("kind", kind), ("source", source), ("target", target)):
        if value is None:
            raise InvalidValue(name, "required: send a JSON body or the fields as query parameters")
        _refuse_decoded_plus(name, value)
    if kind not in ("files", "disk"):
        raise InvalidValue("kind", f"{kind!r} is not one of files, disk")
    options: dict[str, Any] = {}
    for name in request.query_params:
        if name not in _PUT_FIELDS:
            values = [_option_value(value) for value in request.query_params.getlist(name)]
            options[name] = values if len(values) > 1 else values[0]
    properties = {SCAN_PERCENTAGE: percentage} if percentage else {}
    return MigrationCreate(
        kind=kind,
        source=source,
        target=target,
        priority=priority or "NORMAL",
        properties=properties,
        options=options,
    )


def _refuse_decoded_plus(name: str, value: str) -> None:
    """``nbd+unix://`` sent unencoded in a query arrives as ``nbd unix://``: say so, not "no such URI"."""
    scheme, sep, _ = value.partition("://")
    if sep and " " in scheme:
        raise InvalidValue(
            name,
            f"received {value!r}: a '+' in a query string decodes as a space; "
            f"send it as %2B ({scheme.replace(' ', '%2B')}://...)",
        )


def _option_value(text: str) -> Any:
    """Query strings carry text only: read ``true``/``false`` and whole numbers as what they are."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered.isdigit():
        return int(lowered)
    return text


@router.get("/migrations", operation_id="listMigrations", summary="List migrations", responses=errors(422))
def list_migrations(
    services: ServicesDep,
    state: Annotated[State | None, Query(description="only migrations in this state", examples=["RUNNING"])] = None,
) -> list[Migration]:
    """Every migration with its state, progress and pool share, oldest first.

    ```sh
    curl 'http://127.0.0.1:18080/migrations?state=RUNNING'
    ```
    """
    return [to_wire(view) for view in services.jobs.list_jobs(state)]


@router.get("/migrations/{job_id}", operation_id="getMigration", summary="Read a migration", responses=errors(404, 422))
def get_migration(services: ServicesDep, job_id: JobId) -> Migration:
    """One migration: its definition, state, `error`, `progress` (per kind) and `pool` share.

    ```sh
    curl http://127.0.0.1:18080/migrations/projects
    ```
    """
    return to_wire(services.jobs.get(job_id))


@router.patch(
    "/migrations/{job_id}",
    operation_id="patchMigration",
    summary="Change a migration's priority, share or options",
    responses=errors(404, 409, 422),
)
def patch_migration(
    services: ServicesDep,
    job_id: JobId,
    body: Annotated[MigrationPatch | None, Body()] = None,
    priority: Annotated[str | None, Query(max_length=16, description=PRIORITY)] = None,
    percentage: str | None = Percentage,
) -> Migration:
    """Change `priority` or the `migration.parallel.scan.percentage` override, by query
    parameters or a JSON merge-patch body; applies live, in any state. An empty percentage
    removes the override. `options` change only while neither SCHEDULED nor RUNNING (409).
    A query key it does not know is a 422 naming it.

    ```sh
    curl -X PATCH 'http://127.0.0.1:18080/migrations/projects?migration.parallel.scan.percentage=13%25'
    ```
    """
    body = body or MigrationPatch()
    new_priority = priority if priority is not None else body.priority
    changes: dict[str, Any] = {}
    if new_priority is not None:
        changes["priority"] = parse_priority(new_priority, "priority")
    if percentage is not None:
        changes["percentage"] = parse_properties({SCAN_PERCENTAGE: percentage}, "query")
        changes["clear_percentage"] = changes["percentage"] is None
    elif body.properties is not None and SCAN_PERCENTAGE in body.properties:
        changes["percentage"] = parse_properties(body.properties)
        changes["clear_percentage"] = changes["percentage"] is None
    elif body.properties:
        parse_properties(body.properties)  # names the unknown property
    if body.options is not None:
        changes["options"] = body.options
    return to_wire(services.jobs.patch(job_id, **changes))


@router.delete(
    "/migrations/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="deleteMigration",
    summary="Delete a migration's record",
    responses=ACTION_ERRORS,
)
def delete_migration(services: ServicesDep, job_id: JobId) -> None:
    """Forget a migration (never its data; a files migration's own temporaries are removed).
    409 while SCHEDULED or RUNNING: stop it first.

    ```sh
    curl -X DELETE http://127.0.0.1:18080/migrations/projects
    ```
    """
    services.jobs.delete(job_id)


@router.post(
    "/migrations/stop", operation_id="stopAllMigrations", summary="Stop every migration", responses=errors(422)
)
def stop_all(services: ServicesDep) -> list[Migration]:
    """Stop the SCHEDULED migrations, then the RUNNING ones (units in flight finish first);
    answers the migrations it stopped.

    ```sh
    curl -X POST http://127.0.0.1:18080/migrations/stop
    ```
    """
    return [to_wire(view) for view in services.jobs.stop_all()]


@router.post(
    "/migrations/{job_id}/start", operation_id="startMigration", summary="Start a migration", responses=ACTION_ERRORS
)
def start(services: ServicesDep, job_id: JobId) -> Migration:
    """Start a NONSCHEDULED or STOPPED migration, or run a COMPLETED one again as an incremental pass
    (copying only what changed). It is SCHEDULED until fewer than `migration.max.running.migrations`
    are RUNNING.

    ```sh
    curl -X POST http://127.0.0.1:18080/migrations/projects/start
    ```
    """
    return to_wire(services.jobs.start(job_id))


@router.post(
    "/migrations/{job_id}/stop", operation_id="stopMigration", summary="Stop a migration", responses=ACTION_ERRORS
)
def stop(services: ServicesDep, job_id: JobId) -> Migration:
    """Stop a SCHEDULED or RUNNING migration; units in flight finish and checkpoint first, so `resume`
    continues from there.

    ```sh
    curl -X POST http://127.0.0.1:18080/migrations/projects/stop
    ```
    """
    return to_wire(services.jobs.stop(job_id))


@router.post(
    "/migrations/{job_id}/resume", operation_id="resumeMigration", summary="Resume a migration", responses=ACTION_ERRORS
)
def resume(services: ServicesDep, job_id: JobId) -> Migration:
    """Continue a STOPPED or FAILED migration from its checkpoint, retrying the entries that failed,
    without copying again what was done.

    ```sh
    curl -X POST http://127.0.0.1:18080/migrations/projects/resume
    ```
    """
    return to_wire(services.jobs.resume(job_id))


@router.post(
    "/migrations/{job_id}/reset",
    operation_id="resetMigration",
    summary="Reset a migration's progress",
    responses=ACTION_ERRORS,
)
def reset(services: ServicesDep, job_id: JobId) -> Migration:
    """Forget the progress and checkpoint of a migration that is neither SCHEDULED nor RUNNING, so that
    its next start scans from the beginning.

    ```sh
    curl -X POST http://127.0.0.1:18080/migrations/projects/reset
    ```
    """
    return to_wire(services.jobs.reset(job_id))


@router.post(
    "/migrations/{job_id}/verify", operation_id="verifyMigration", summary="Verify a migration", responses=ACTION_ERRORS
)
def verify(services: ServicesDep, job_id: JobId) -> Migration:
    """Compare source and target of a migration that is STOPPED, FAILED or COMPLETED; the report is at
    `GET /migrations/{id}/verification`.

    ```sh
    curl -X POST http://127.0.0.1:18080/migrations/projects/verify
    ```
    """
    return to_wire(services.jobs.verify(job_id))


@router.post(
    "/migrations/{job_id}/addPendingRegion",
    operation_id="addPendingRegion",
    summary="Rescan one directory",
    responses=errors(404, 422),
)
def add_pending_region(
    services: ServicesDep,
    job_id: JobId,
    path: Annotated[
        str, Query(max_length=4096, description="a directory of the source, from its root", examples=["/sub/dir"])
    ],
) -> Migration:
    """Queue a rescan of one directory of a files migration's source: now when it runs, else at
    its next pass.

    ```sh
    curl -X POST 'http://127.0.0.1:18080/migrations/projects/addPendingRegion?path=/sub/dir'
    ```
    """
    return to_wire(services.jobs.add_pending_region(job_id, path))


@router.get(
    "/migrations/{job_id}/failures",
    operation_id="listFailures",
    summary="List the entries a migration could not copy",
    responses=errors(404, 422),
)
def failures(
    services: ServicesDep,
    job_id: JobId,
    offset: Annotated[int, Query(ge=0, le=2**31, description="entries to skip")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="most entries to return")] = 100,
) -> Failures:
    """Every entry the latest pass of a files migration could not copy, with its reason, the
    attempts made (a pass tries each once more at its end) and when it failed last, in path
    order, as of the last checkpoint. A pass with any ends `FAILED`; `resume` tries them again.
    A disk migration stops at its first failure and lists none here.

    ```sh
    curl 'http://127.0.0.1:18080/migrations/projects/failures?offset=0&limit=100'
    ```
    """
    total, entries = services.jobs.failures(job_id, offset, limit)
    return Failures(
        migration_id=job_id,
        total=total,
        offset=offset,
        limit=limit,
        failures=[Failure.model_validate(entry) for entry in entries],
    )


@router.get(
    "/migrations/{job_id}/verification",
    operation_id="getVerification",
    summary="Read a migration's verification report",
    responses=errors(404, 422),
)
def verification(
    services: ServicesDep,
    job_id: JobId,
    offset: Annotated[int, Query(ge=0, le=2**31, description="discrepancies to skip")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="most discrepancies to return")] = 100,
) -> Verification:
    """The latest verification of a migration (`status`, `counts`) and a page of its
    discrepancies, in the order found. 404 until `POST .../verify` has run once.

    ```sh
    curl 'http://127.0.0.1:18080/migrations/projects/verification?offset=0&limit=100'
    ```
    """
    report, items = services.jobs.verification(job_id, offset, limit)
    return Verification(
        migration_id=job_id,
        status=report.status,
        started_time=report.started_at,
        completed_time=report.completed_at,
        counts=report.counts,
        error=report.error,
        offset=offset,
        limit=limit,
        discrepancies=[Discrepancy(type=item.type, path=item.path, detail=item.detail) for item in items],
    )
