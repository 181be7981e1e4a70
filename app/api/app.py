"""The FastAPI application: wires settings, database, engines, coordinator and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib.metadata import version

import structlog
from fastapi import Depends, FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.engine import make_url

from app.api import problems
from app.api.deps import Services
from app.api.middleware import RequestContext
from app.api.queries import refuse_unknown_query
from app.api.ready import ReadyAnswers
from app.api.routes import configuration, dashboard, docs, health, migrations, stats
from app.api.security import authorize
from app.db.nodes import holder_text
from app.db.session import Database
from app.db.sole import SoleNodeLock, sqlite_path
from app.engines import processes
from app.engines.base import Engine
from app.engines.registry import default_engines
from app.observability.metrics import Metrics
from app.pool.coordinator import Coordinator
from app.services.jobs import JobService
from app.services.properties import PropertyService
from app.services.stats import StatsService
from app.settings import Settings

log = structlog.get_logger("ferry.api")
VERSION = version("ferry")
DESCRIPTION = """ferry copies directory trees (`files`) and virtual disks over NBD (`disk`), many migrations
at once, all on one global pool of worker threads that operators resize live.

* **Tokens**: with `FERRY_TOKENS` set, send `Authorization: Bearer TOKEN`; a viewer may GET, an
  operator may also act on migrations, an admin may also change configuration.
* **Errors** are `application/problem+json`; `type` is a URI under `urn:ferry:problem:`, and
  `detail` names the field or parameter at fault. A refused request changes nothing.
* **Query strings** are percent-encoded: `%` is `%25`, `+` is `%2B` (a bare `+` is a space).
"""


def build_services(settings: Settings, engines: Mapping[str, Engine]) -> Services:
    processes.configure(settings.helper_nice)
    db = Database(settings.effective_database_url, idle_transaction_timeout=settings.node_lease / 2)
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
        log_start(settings)
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
        version=VERSION,
        summary="Data migrations of directory trees and NBD disks on one shared pool of workers.",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served offline by app.api.routes.docs
        redoc_url=None,
    )
    app.state.services = services
    app.state.metrics = metrics
    problems.install(app)
    secured = [Depends(authorize)]
    for router in (configuration.router, migrations.router, stats.router):
        app.include_router(router, dependencies=[*secured, Depends(refuse_unknown_query)])
    app.include_router(health.router)
    app.include_router(dashboard.router)  # open: the page's data calls carry the token
    docs.install(app)  # open, as the OpenAPI document is

    @app.get(
        "/metrics",
        tags=["health"],
        operation_id="metrics",
        summary="Prometheus metrics",
        dependencies=secured,
        response_class=Response,
        responses={200: {"description": "the ferry_* series", "content": {CONTENT_TYPE_LATEST: {}}}},
    )
    def prometheus_metrics() -> Response:
        """Every `ferry_*` series in Prometheus text format, in base units (a viewer token when
        tokens are set).

            curl http://127.0.0.1:18080/metrics
        """
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(ReadyAnswers, tokens=settings.tokens, answers=stats.ready_answers(services))
    app.add_middleware(RequestContext, metrics=metrics)  # outermost: it sees every answer
    return app


def log_start(settings: Settings) -> None:
    """One line that says what this server is: version, node, database (no password), roots."""
    log.info(
        "ferry starting",
        action="startup",
        version=VERSION,
        node=settings.node_id,
        database=make_url(settings.effective_database_url).render_as_string(hide_password=True),
        allowed_roots=[str(root) for root in settings.effective_allowed_roots],
        listen=f"{settings.host}:{settings.port}",
    )
