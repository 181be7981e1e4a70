"""``/stats``: what dashboards poll (SPEC section 5)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import ServicesDep
from app.api.schemas import MigrationSummary, Node, ScannerPoolStats, ThroughputSummary

router = APIRouter(tags=["stats"])


@router.get("/stats/scannerPoolStats", operation_id="scannerPoolStats", response_model=ScannerPoolStats)
def scanner_pool_stats(services: ServicesDep) -> dict[str, Any]:
    return services.stats.scanner_pool()


@router.get("/stats/migrationSummary", operation_id="migrationSummary", response_model=MigrationSummary)
def migration_summary(services: ServicesDep) -> dict[str, Any]:
    return services.stats.migration_summary()


@router.get("/stats/throughputSummary", operation_id="throughputSummary", response_model=ThroughputSummary)
def throughput_summary(services: ServicesDep) -> dict[str, Any]:
    return services.stats.throughput()


@router.get("/nodes", operation_id="listNodes", response_model=list[Node], tags=["cluster"])
def list_nodes(services: ServicesDep) -> list[dict[str, Any]]:
    """The live nodes of the cluster: heartbeat age, threads granted and at work, migrations."""
    return services.stats.nodes()
