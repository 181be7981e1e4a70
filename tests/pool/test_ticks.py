"""What a coordinator tick costs when nothing happens, what still runs at once when something does,
and how its configuration reload keeps to the newest change."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event

from app.api.app import build_services
from app.api.deps import Services
from app.policy.properties import RuntimeConfig
from app.pool import coordinator as coordinator_module
from app.pool.coordinator import TICK, leader_term, round_every
from app.services.jobs import JobDefinition
from tests.api.conftest import settings_for
from tests.fakes.engine import FakeEngine


@given(st.floats(min_value=0.1, max_value=3600.0))
def test_a_leader_renews_its_term_at_least_four_times_within_it(node_lease: float) -> None:
    """Rounds nobody asked for come often enough that a leader never lets its term lapse, at
    least once a second, and never more often than ticks."""
    every = round_every(node_lease)
    assert TICK <= every <= 1.0
    assert every <= leader_term(node_lease).total_seconds() / 4


@pytest.fixture
def services(database_url: str, tmp_path: Path) -> Iterator[Services]:
    services = build_services(settings_for(database_url, tmp_path), {"files": FakeEngine(), "disk": FakeEngine()})
    coordinator = services.coordinator
    coordinator.registry.claim_identity()
    coordinator.registry.register()
    try:
        yield services
    finally:
        coordinator.registry.release_identity()
        services.db.dispose()


def statements_of(services: Services, ticks: int, asked: bool) -> int:
    """SQL statements the coordinator sends over ``ticks`` ticks."""
    count = 0

    def counted(*_: Any) -> None:
        nonlocal count
        count += 1

    event.listen(services.db.engine, "before_cursor_execute", counted)
    try:
        for _ in range(ticks):
            services.coordinator._tick(asked)
    finally:
        event.remove(services.db.engine, "before_cursor_execute", counted)
    return count


def test_an_idle_tick_only_syncs(services: Services) -> None:
    """Between rounds an idle tick sends the sync's statements only: the leader's round and the
    view's reads of the cluster (most of a tick's interpreter time, which the web server
    shares) wait for their cadence, unless something here asks for them (a woken tick)."""
    services.coordinator._tick(True)  # the first round: leadership, the view
    quiet = statements_of(services, 3, asked=False)
    asked = statements_of(services, 3, asked=True)
    assert quiet * 4 < asked, (quiet, asked)


def test_a_woken_tick_admits_at_once(services: Services, tmp_path: Path) -> None:
    """A migration created here wakes the coordinator: its next tick runs the round that admits
    it, without waiting for the cadence."""
    services.coordinator._tick(True)
    data = tmp_path / "data"
    (data / "src").mkdir()
    definition = JobDefinition("files", str(data / "src"), str(data / "dst"))
    services.jobs.create("m1", definition, auto_start=True, idempotent=False)
    coordinator = services.coordinator
    coordinator._tick(coordinator._round_asked())  # as the loop asks
    assert coordinator.view.jobs["m1"].state == "RUNNING"


def test_the_configuration_reload_asks_for_a_round_only_when_it_changed(services: Services) -> None:
    """The coordinator reloads the properties every second: the same values again must not make
    every such tick a round; a changed value must (its grants follow within a second)."""
    coordinator = services.coordinator
    coordinator._round_asked()
    coordinator.apply_config(coordinator.config)
    assert not coordinator._round_asked()
    services.properties.set("global.scan.limit", "5")
    assert coordinator._round_asked()
    assert not coordinator._round_asked()  # once per batch of asks


def test_a_reload_that_read_before_a_change_does_not_undo_it(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Race: the coordinator's once-a-second reload reads the properties, a web thread commits a
    change and applies it, then the reload applies what it read. The change must stay applied:
    the applier waits for the reload in flight, and its newer configuration lands last."""
    coordinator = services.coordinator
    old = coordinator.config
    new = replace(old, bandwidth_limit=500_000_000)
    read, go = threading.Event(), threading.Event()

    def paused_load(db: object) -> RuntimeConfig:
        read.set()
        go.wait(10)
        return old  # what the table held when the reload read it

    monkeypatch.setattr(coordinator_module, "load_config", paused_load)
    reloader = threading.Thread(target=coordinator.reload_config)
    reloader.start()
    assert read.wait(10)
    applier = threading.Thread(target=coordinator.apply_config, args=(new,))
    applier.start()
    applier.join(0.5)  # room to run ahead of the reload, which it must not take
    assert applier.is_alive(), "the change was applied while a reload that read before it was in flight"
    go.set()
    reloader.join(10)
    applier.join(10)
    assert coordinator.config == new
    assert coordinator.bandwidth.rate == 500_000_000
