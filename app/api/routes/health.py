"""Probes: ``/healthz`` says the process is up, ``/readyz`` that the database is usable."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import ServicesDep
from app.api.schemas import Health
from app.db.schema import head_revision, is_at_head

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="health", summary="Is the process up")
async def healthz() -> Health:
    """Liveness: answers while the process serves (on the event loop: no hop through the thread
    pool, which requests that wait on the database may fill); open, no token needed.

    ```sh
    curl http://127.0.0.1:18080/healthz
    ```
    """
    return Health(status="ok")


@router.get(
    "/readyz",
    operation_id="ready",
    response_model=Health,
    summary="Is the database usable",
    responses={503: {"model": Health, "description": "the database is unreachable or its schema is not at head"}},
)
def readyz(services: ServicesDep) -> Health | JSONResponse:
    """Readiness: the database answers and its schema is at head; open, no token needed.

    ```sh
    curl http://127.0.0.1:18080/readyz
    ```
    """
    try:
        at_head = is_at_head(services.db.engine)
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "detail": f"database unreachable: {exc}"}, status_code=503)
    if not at_head:
        detail = f"schema is not at head {head_revision()}; run 'ferry db upgrade'"
        return JSONResponse({"status": "unavailable", "detail": detail}, status_code=503)
    return Health(status="ready")
