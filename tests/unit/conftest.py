"""Fixtures for the pure core: a manager wired to in-memory fakes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from logoutd.config.model import Config
from logoutd.core.manager import Manager
from logoutd.core.ports import Account, Ports
from tests.fakes import (
    FakeAudit,
    FakeCgroups,
    FakeClock,
    FakeProcesses,
    FakeStore,
    FakeUserDb,
    FakeUserFiles,
    World,
)

ALICE = Account(1000, 1000, "alice", "/home/alice")
BOB = Account(1001, 1001, "bob", "/home/bob")
ROOT = Account(0, 0, "root", "/root")


@dataclass
class Core:
    world: World
    clock: FakeClock
    processes: FakeProcesses
    cgroups: FakeCgroups
    store: FakeStore
    userfiles: FakeUserFiles
    audit: FakeAudit
    ports: Ports
    manager: Manager

    def restart(self, config: Config | None = None) -> Manager:
        """A new manager over the same world and store: what a daemon restart sees."""
        self.world.exit_watchers.clear()
        self.world.empty_watchers.clear()
        self.manager = Manager(self.ports, config or self.manager.config)
        self.manager.restore()
        return self.manager


def make_core(config: Config | None = None) -> Core:
    world = World("/logoutd-test")
    clock = FakeClock()
    processes = FakeProcesses(world)
    cgroups = FakeCgroups(world)
    store = FakeStore()
    userfiles = FakeUserFiles()
    audit = FakeAudit()
    ports = Ports(clock, processes, cgroups, store, FakeUserDb([ALICE, BOB, ROOT]), userfiles, audit)
    return Core(world, clock, processes, cgroups, store, userfiles, audit, ports,
                Manager(ports, config or Config()))


@pytest.fixture
def core() -> Core:
    return make_core()
