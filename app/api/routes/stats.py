"""``/stats``: what dashboards poll (SPEC section 5)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.routing import APIRoute

from app.api.deps import Services, ServicesDep
from app.api.ready import POOL_ANSWERS, ReadyAnswer
from app.api.schemas import History, MigrationSummary, Node, ScannerPoolStats, ThroughputSummary

router = APIRouter(tags=["stats"])
POOL_STATS = "/stats/scannerPoolStats"


@router.get(
    POOL_STATS,
    operation_id="scannerPoolStats",
    response_model=ScannerPoolStats,
    summary="The global scan pool",
)
async def scanner_pool_stats(services: ServicesDep) -> Response:
    """The cluster's pool and each running migration's share, from the snapshot each node keeps
    ready (answered before routing, by :class:`~app.api.ready.ReadyAnswers`: it touches neither
    the database nor the pool).

    ```sh
    curl http://127.0.0.1:18080/stats/scannerPoolStats
    ```
    """
    return Response(POOL_ANSWERS.render(services.stats.scanner_pool()), media_type="application/json")


def ready_answers(services: Services) -> dict[str, ReadyAnswer]:
    """What :class:`~app.api.ready.ReadyAnswers` serves before routing: this route's answer."""
    route = next(r for r in router.routes if isinstance(r, APIRoute) and r.path == POOL_STATS)
    return {POOL_STATS: ReadyAnswer(route, lambda: POOL_ANSWERS.render(services.stats.scanner_pool()))}


@router.get(
    "/stats/migrationSummary",
    operation_id="migrationSummary",
    response_model=MigrationSummary,
    summary="Migrations by state",
)
def migration_summary(services: ServicesDep) -> dict[str, Any]:
    """Migrations grouped by state, with their bytes, percentage and ETA.

    ```sh
    curl http://127.0.0.1:18080/stats/migrationSummary
    ```
    """
    return services.stats.migration_summary()


@router.get(
    "/stats/throughputSummary",
    operation_id="throughputSummary",
    response_model=ThroughputSummary,
    summary="Recent throughput",
)
async def throughput_summary(services: ServicesDep) -> dict[str, Any]:
    """Bytes and files copied over the last 10, 60 and 300 seconds, by the whole cluster.

    ```sh
    curl http://127.0.0.1:18080/stats/throughputSummary
    ```
    """
    return services.stats.throughput()


@router.get("/stats/history", operation_id="statsHistory", response_model=History, summary="The last hour")
async def history(
    services: ServicesDep,
    since: Annotated[
        datetime | None, Query(description="only samples taken after this time (ISO 8601), for a poll")
    ] = None,
) -> dict[str, Any]:
    """Throughput and pool use over the last hour as scannerPoolStats gave them, a sample every
    few seconds kept in this node's memory: what a dashboard draws when it (re)loads (answered on
    the event loop: it copies the ring, nothing more).

    ```sh
    curl http://127.0.0.1:18080/stats/history
    ```
    """
    return services.stats.history_view(since)


@router.get("/nodes", operation_id="listNodes", response_model=list[Node], tags=["cluster"], summary="The live nodes")
async def list_nodes(services: ServicesDep) -> list[dict[str, Any]]:
    """The live nodes of the cluster: heartbeat age, threads granted and at work, migrations.

    ```sh
    curl http://127.0.0.1:18080/nodes
    ```
    """
    return services.stats.nodes()
