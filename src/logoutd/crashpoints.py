"""Fault injection for the crash tests: SIGKILL the daemon at a named step. Off unless asked.

LOGOUTD_CRASH_AT=name (the first time the step is reached) or name:N (the N-th time) makes
`crashpoint(name)` kill the daemon with SIGKILL at that instant, as a crash would. The variable
is read once at import; unset, a crashpoint costs one comparison.
"""

from __future__ import annotations

import os
import signal

# Every point the code calls (tests check this list against the source).
CRASHPOINTS: tuple[str, ...] = (
    "counter.reserved",
    "linger.set",
    "session.create.intent-saved",
    "session.create.scope-created",
    "session.create.leader-moved",
    "session.create.before-final-save",
    "session.create.after-final-save",
    "session.stop.decision-saved",
    "session.stop.term-sent",
    "session.stop.sigkill-timeout",
    "session.finalize.before-remove",
    "session.finalize.cgroup-removed",
    "session.finalize.state-removed",
    "user.start.runtime-dir",
    "user.stop.term-sent",
    "user.finalize.slice-removed",
    "user.finalize.runtime-dir-removed",
    "user.finalize.state-removed",
    "unit.new.intent-saved",
    "unit.scope.moved",
    "unit.service.spawned",
)


def _parse(value: str) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, count = value.partition(":")
    try:
        return name, max(1, int(count)) if count else 1
    except ValueError:
        return name, 1


_TARGET = _parse(os.environ.get("LOGOUTD_CRASH_AT", ""))
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
