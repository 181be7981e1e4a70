"""The FastAPI application: wires settings, database, engines, coordinator and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api import problems
from app.api.deps import Services
from app.api.middleware import RequestContext
from app.api.routes import configuration, dashboard, health, migrations, stats
from app.api.security import authorize
from app.db.nodes import holder_text
from app.db.session import Database
from app.db.sole import SoleNodeLock, sqlite_path
from app.engines.base import Engine
from app.engines.registry import default_engines
from app.observability.metrics import Metrics
from app.pool.coordinator import Coordinator
from app.services.jobs import JobService
from app.services.properties import PropertyService
from app.services.stats import StatsService
from app.settings import Settings


def build_services(settings: Settings, engines: Mapping[str, Engine]) -> Services:
    db = Database(settings.effective_database_url)
    coordinator = Coordinator(
        db, engines, settings.node_id, settings.effective_allowed_roots, node_lease=settings.node_lease
    )
    return Services(
        settings=settings,
        db=db,
        coordinator=coordinator,
        jobs=JobService(db, engines, coordinator),
        properties=PropertyService(db, coordinator.apply_config),
        stats=StatsService(db, coordinator),
    )


def create_app(settings: Settings, engines: Mapping[str, Engine] | None = None) -> FastAPI:
    """The app; the schema must already be at head (``ferry serve`` upgrades it first)."""
    services = build_services(settings, default_engines() if engines is None else engines)
    metrics = Metrics(services.coordinator, services.db)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sqlite = sqlite_path(settings.effective_database_url)
        lock = SoleNodeLock(sqlite) if sqlite is not None else None
        if lock is not None:
            lock.acquire(lambda: holder_text(services.db))
        try:
            services.coordinator.start(sole_node=lock is not None)
            services.stats.history.start()
            try:
                yield
            finally:
                services.stats.history.stop()
                services.coordinator.shutdown(settings.drain_timeout)
                services.db.dispose()
        finally:
            if lock is not None:
                lock.release()

    app = FastAPI(
        title="ferry",
        version="0.1.0",
        summary="Data migrations of directory trees and NBD disks on one shared pool of workers.",
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.metrics = metrics
    problems.install(app)
    secured = [Depends(authorize)]
    for router in (configuration.router, migrations.router, stats.router):
        app.include_router(router, dependencies=secured)
    app.include_router(health.router)
    app.include_router(dashboard.router)  # open: the page's data calls carry the token

    @app.get(
        "/metrics",
        tags=["health"],
        operation_id="metrics",
        dependencies=secured,
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(RequestContext, metrics=metrics)
    return app
