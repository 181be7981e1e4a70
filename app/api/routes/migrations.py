"""``/migrations``: define, read, change and act on migrations (SPEC section 3)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response, status

from app.api.deps import ServicesDep
from app.api.schemas import Discrepancy, Failure, Migration, MigrationCreate, MigrationPatch, PoolShare, Verification
from app.errors import InvalidValue
from app.policy.percent import format_percent
from app.policy.properties import SCAN_PERCENTAGE
from app.policy.states import State
from app.services.jobs import JobDefinition, JobView, parse_priority, parse_properties

router = APIRouter(tags=["migrations"])

JobId = Annotated[str, Path(description="the migration's id", max_length=128)]
Percentage = Query(
    default=None,
    alias=SCAN_PERCENTAGE,
    max_length=64,
    description="per-migration share of the pool, 0 < p <= 100 ('%' optional); empty removes it",
)
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
    return [
        Failure(path=str(e["path"]), reason=str(e["reason"])) for e in entries if isinstance(e, dict) and "path" in e
    ]


def _definition(body: MigrationCreate) -> JobDefinition:
    return JobDefinition(
        kind=body.kind,
        source=body.source,
        target=body.target,
        priority=parse_priority(body.priority),
        scan_percentage=parse_properties(body.properties),
        options=body.options,
    )


@router.post("/migrations", status_code=status.HTTP_201_CREATED, operation_id="createMigration")
def create_migration(services: ServicesDep, body: MigrationCreate) -> Migration:
    auto_start = True if body.auto_start is None else body.auto_start
    view, _ = services.jobs.create(body.migration_id, _definition(body), auto_start=auto_start, idempotent=False)
    return to_wire(view)


@router.put(
    "/migrations/{job_id}",
    status_code=status.HTTP_201_CREATED,
    operation_id="putMigration",
    responses={200: {"model": Migration, "description": "the same definition existed already"}},
)
def put_migration(
    services: ServicesDep,
    request: Request,
    response: Response,
    job_id: JobId,
    body: Annotated[MigrationCreate | None, Body()] = None,
    kind: Annotated[str | None, Query(max_length=16)] = None,
    source: Annotated[str | None, Query(max_length=4096)] = None,
    target: Annotated[str | None, Query(max_length=4096)] = None,
    priority: Annotated[str | None, Query(max_length=16)] = None,
    auto_start: Annotated[bool | None, Query(alias="autoStart")] = None,
    percentage: str | None = Percentage,
) -> Migration:
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


def _option_value(text: str) -> Any:
    """Query strings carry text only: read ``true``/``false`` and whole numbers as what they are."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered.isdigit():
        return int(lowered)
    return text


@router.get("/migrations", operation_id="listMigrations")
def list_migrations(services: ServicesDep, state: State | None = None) -> list[Migration]:
    return [to_wire(view) for view in services.jobs.list_jobs(state)]


@router.get("/migrations/{job_id}", operation_id="getMigration")
def get_migration(services: ServicesDep, job_id: JobId) -> Migration:
    return to_wire(services.jobs.get(job_id))


@router.patch("/migrations/{job_id}", operation_id="patchMigration")
def patch_migration(
    services: ServicesDep,
    job_id: JobId,
    body: Annotated[MigrationPatch | None, Body()] = None,
    priority: Annotated[str | None, Query(max_length=16)] = None,
    percentage: str | None = Percentage,
) -> Migration:
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


@router.delete("/migrations/{job_id}", status_code=status.HTTP_204_NO_CONTENT, operation_id="deleteMigration")
def delete_migration(services: ServicesDep, job_id: JobId) -> None:
    services.jobs.delete(job_id)


@router.post("/migrations/stop", operation_id="stopAllMigrations")
def stop_all(services: ServicesDep) -> list[Migration]:
    return [to_wire(view) for view in services.jobs.stop_all()]


@router.post("/migrations/{job_id}/start", operation_id="startMigration")
def start(services: ServicesDep, job_id: JobId) -> Migration:
    return to_wire(services.jobs.start(job_id))


@router.post("/migrations/{job_id}/stop", operation_id="stopMigration")
def stop(services: ServicesDep, job_id: JobId) -> Migration:
    return to_wire(services.jobs.stop(job_id))


@router.post("/migrations/{job_id}/resume", operation_id="resumeMigration")
def resume(services: ServicesDep, job_id: JobId) -> Migration:
    return to_wire(services.jobs.resume(job_id))


@router.post("/migrations/{job_id}/reset", operation_id="resetMigration")
def reset(services: ServicesDep, job_id: JobId) -> Migration:
    return to_wire(services.jobs.reset(job_id))


@router.post("/migrations/{job_id}/verify", operation_id="verifyMigration")
def verify(services: ServicesDep, job_id: JobId) -> Migration:
    return to_wire(services.jobs.verify(job_id))


@router.post("/migrations/{job_id}/addPendingRegion", operation_id="addPendingRegion")
def add_pending_region(
    services: ServicesDep,
    job_id: JobId,
    path: Annotated[str, Query(max_length=4096, description="a directory of the source, e.g. /sub/dir")],
) -> Migration:
    return to_wire(services.jobs.add_pending_region(job_id, path))


@router.get("/migrations/{job_id}/verification", operation_id="getVerification")
def verification(
    services: ServicesDep,
    job_id: JobId,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Verification:
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
