"""Fault injection for the crash tests: SIGKILL the daemon at a named step. Off unless asked.

LOGOUTD_CRASH_AT=name (the first time the step is reached) or name:N (the N-th time) makes
`crashpoint(name)` kill the daemon with SIGKILL at that instant, as a crash would. The variable
is read once at import; unset, a crashpoint costs one comparison.

LOGOUTD_STALL_AT=name (or name:SECONDS, default 3600) makes `stallpoint(name)` sleep there: a
spawned child stuck at one of its steps, for the tests of the spawn deadline.
"""

from __future__ import annotations

import os
import signal
import time

# Every point the code calls (tests check this list against the source).
CRASHPOINTS: tuple[str, ...] = (
    "counter.reserved",
    "linger.set",
    "session.create.intent-saved",
    "session.create.scope-created",
    "session.create.leader-moved",
    "session.create.before-final-save",
    "session.create.after-final-save",
    "session.stop.decided",  # saved, unless the kill of a leader's exit (saved with its round)
    # The stop round's (core/stopround.py), one set per owner:
    "session.stop.term-sent",
    "session.stop.sigkill-timeout",
    "user.stop.term-sent",
    "user.stop.sigkill-timeout",
    "unit.stop.term-sent",
    "unit.stop.sigkill-timeout",
    "session.finalize.before-remove",
    "session.finalize.cgroup-removed",
    "session.finalize.state-removed",
    "user.start.runtime-dir",
    "user.finalize.before-remove",
    "user.finalize.slice-removed",
    "user.finalize.runtime-dir-removed",
    "user.finalize.state-removed",
    "unit.new.intent-saved",
    "unit.scope.moved",
    "unit.service.spawned",
    "unit.service.confirmed",
    "unit.finalize.before-remove",
    "unit.finalize.cgroup-removed",
    "unit.finalize.state-removed",
)

# Every stall point: a spawned child's steps (system/spawn.py), after it reported the stage.
STALLPOINTS: tuple[str, ...] = (
    "spawn.child.cgroup",
    "spawn.child.setup",
    "spawn.child.log",
    "spawn.child.cwd",
    "spawn.child.exec",
)


def _parse(value: str) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, count = value.partition(":")
    try:
        return name, max(1, int(count)) if count else 1
    except ValueError:
        return name, 1


def _parse_stall(value: str) -> tuple[str, float] | None:
    if not value:
        return None
    name, _, seconds = value.partition(":")
    try:
        return name, float(seconds) if seconds else 3600.0
    except ValueError:
        return name, 3600.0


_TARGET = _parse(os.environ.get("LOGOUTD_CRASH_AT", ""))
_STALL = _parse_stall(os.environ.get("LOGOUTD_STALL_AT", ""))
_hits = 0


def crashpoint(name: str) -> None:
    """SIGKILL ourselves if LOGOUTD_CRASH_AT names this point (and this occurrence)."""
    global _hits
    if _TARGET is None or _TARGET[0] != name:
        return
    _hits += 1
    if _hits < _TARGET[1]:
        return
    os.write(2, f"logoutd[{os.getpid()}]: CRASHPOINT {name}:{_hits} reached, SIGKILL\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)


def stallpoint(name: str) -> None:
    """Sleep if LOGOUTD_STALL_AT names this point."""
    if _STALL is not None and _STALL[0] == name:
        time.sleep(_STALL[1])
