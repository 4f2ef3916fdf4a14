"""What every core object reaches: the ports, the current configuration, the log."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from logoutd.config.model import Config
from logoutd.core.ports import (
    AuditLog,
    CgroupTree,
    Clock,
    NoSpawner,
    ProcessTable,
    Spawner,
    StateStore,
    UserDb,
    UserFiles,
)

if TYPE_CHECKING:
    from logoutd.core.leftovers import LeftoverLog
    from logoutd.core.sessions import Session
    from logoutd.core.users import User

log = logging.getLogger("logoutd")


@dataclass
class Ports:
    clock: Clock
    processes: ProcessTable
    cgroups: CgroupTree
    store: StateStore
    userdb: UserDb
    userfiles: UserFiles
    audit: AuditLog  # AuditFile: syslog always, the JSON-lines file with AuditLog=
    spawner: Spawner = field(default_factory=NoSpawner)


@dataclass
class Context:
    """Shared by the manager, its sessions and users (logind's `s->manager`)."""

    ports: Ports
    config: Config
    # Set by the manager: called when a session was finalized or a user may be collected.
    on_session_removed: Callable[[Session], None]
    on_user_removed: Callable[[User], None]
    leftovers: LeftoverLog
    # AutoKeep=: move a process tree (policy already checked) into a new scope unit.
    keep_tree: Callable[[User, Sequence[int], str], None]
