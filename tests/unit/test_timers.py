"""Named one-shot timers (core/timers.py) on the fake clock."""

from __future__ import annotations

import math

from logoutd.core.timers import Timers
from tests.fakes import FakeClock


def test_arm_replaces_the_timer_of_that_name_and_forgets_it_once_fired() -> None:
    clock, fired = FakeClock(), []
    timers = Timers(clock)
    timers.arm("t", 5, lambda: fired.append("first"))
    timers.arm("t", 10, lambda: fired.append("second"))
    clock.advance(6)
    assert fired == [] and "t" in timers
    clock.advance(5)
    assert fired == ["second"] and "t" not in timers


def test_infinity_never_arms() -> None:
    clock = FakeClock()
    timers = Timers(clock)
    timers.arm("t", math.inf, lambda: None)
    timers.arm_at("u", math.inf, lambda: None)
    assert "t" not in timers and "u" not in timers and clock.pending() == 0


def test_arm_at_a_deadline_that_has_passed_fires_at_once() -> None:
    clock, fired = FakeClock(), []
    timers = Timers(clock)
    start = clock.now()
    clock.advance(100)
    timers.arm_at("late", start + 10, lambda: fired.append("late"))
    timers.arm_at("soon", clock.now() + 3, lambda: fired.append("soon"))
    clock.advance(0)
    assert fired == ["late"]
    clock.advance(3)
    assert fired == ["late", "soon"]


def test_cancel_all() -> None:
    clock, fired = FakeClock(), []
    timers = Timers(clock)
    timers.arm("a", 1, lambda: fired.append("a"))
    timers.arm("b", 2, lambda: fired.append("b"))
    timers.cancel_all()
    clock.advance(10)
    assert fired == [] and clock.pending() == 0
