"""What every core object reaches: the ports, the current configuration, the log."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from logoutd.config.model import Config
from logoutd.core.killrecords import KillEntry, KillHistory
from logoutd.core.leftovers import LeftoverLog
from logoutd.core.ports import Ports

log = logging.getLogger("logoutd")


@dataclass
class Context:
    """What sessions, users and units share: the ports, the configuration (replaced on reload),
    the leftovers log, and AutoKeep='s way into the units registry."""

    ports: Ports
    config: Config
    leftovers: LeftoverLog
    # AutoKeep=: move a process tree of the user uid (policy checked) into a new scope unit.
    keep_tree: Callable[[int, Sequence[int], str], None]
    kills: KillHistory | None = None  # per-user kill records (the login notice); None: not kept

    def remember_kill(self, uid: int, user: str, entry: KillEntry) -> None:
        if self.kills is not None and entry.count:
            self.kills.add(uid, user, entry)
