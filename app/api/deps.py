"""Typed dependencies, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.db.session import Database
from app.pool.coordinator import Coordinator
from app.services.jobs import JobService
from app.services.properties import PropertyService
from app.services.stats import StatsService
from app.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    coordinator: Coordinator
    jobs: JobService
    properties: PropertyService
    stats: StatsService


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
