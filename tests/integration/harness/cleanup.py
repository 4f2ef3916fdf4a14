"""Ordered teardown: processes first, then the daemon, cgroups, users and files."""

from __future__ import annotations

import enum
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field


class Phase(enum.IntEnum):
    PROCESSES = 0  # sshd and its children, ssh/su clients started by the test
    DAEMON = 1  # the logoutd under test (SIGKILL: stopping it must not matter)
    CGROUP_KILL = 2  # cgroup.kill on the test subtree: everything left in sessions
    USER_PROCESSES = 3  # anything still running as a test user (escaped the tree)
    CGROUPS = 4  # rmdir the test subtree, depth first
    USERS = 5  # userdel -r
    FILES = 6  # PAM service files, symlinks, the temp dir


@dataclass
class Cleanup:
    """Callbacks by phase; `run()` calls them all (LIFO within a phase), never stops early."""

    _steps: list[tuple[Phase, int, str, Callable[[], object]]] = field(default_factory=list)
    _counter: int = 0

    def add(self, phase: Phase, what: str, func: Callable[[], object]) -> None:
        self._counter += 1
        self._steps.append((phase, -self._counter, what, func))

    def run(self) -> list[str]:
        """Run every step; return a description of each one that failed."""
        errors: list[str] = []
        steps, self._steps = sorted(self._steps, key=lambda s: (s[0], s[1])), []
        for phase, _, what, func in steps:
            try:
                func()
            except BaseException as e:
                errors.append(f"{phase.name} {what}: {e!r}")
                traceback.print_exc(file=sys.stderr)
        return errors
