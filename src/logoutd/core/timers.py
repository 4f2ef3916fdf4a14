"""Named one-shot timers of one session or user: arming a name replaces its timer."""

from __future__ import annotations

import math
from collections.abc import Callable

from logoutd.core.ports import Clock, TimerHandle


class Timers:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._handles: dict[str, TimerHandle] = {}

    def arm(self, name: str, delay: float, callback: Callable[[], None]) -> None:
        """Call back after delay seconds; `math.inf` ("infinity" in the config) means never."""
        self.cancel(name)
        if delay == math.inf:
            return

        def fire() -> None:
            self._handles.pop(name, None)
            callback()

        self._handles[name] = self._clock.call_later(delay, fire)

    def arm_at(self, name: str, deadline: float, callback: Callable[[], None]) -> None:
        """Call back at clock time `deadline` (at once if it has passed, e.g. after a restart)."""
        self.arm(name, max(0.0, deadline - self._clock.now()), callback)

    def cancel(self, name: str) -> None:
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.cancel()

    def cancel_all(self) -> None:
        for name in list(self._handles):
            self.cancel(name)

    def __contains__(self, name: str) -> bool:
        return name in self._handles
