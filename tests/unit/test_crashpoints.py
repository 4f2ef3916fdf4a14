"""crashpoints: how LOGOUTD_CRASH_AT and LOGOUTD_STALL_AT are read."""

from __future__ import annotations

import pytest

from logoutd.crashpoints import _parse, _parse_stall


@pytest.mark.parametrize(
    ("value", "target"),
    [("", None), ("session.stop.term-sent", ("session.stop.term-sent", 1)),
     ("user.stop.term-sent:3", ("user.stop.term-sent", 3)),
     ("counter.reserved:1", ("counter.reserved", 1)),
     ("counter.reserved:0", ("counter.reserved", 1)),  # the first hit at the earliest
     ("counter.reserved:-2", ("counter.reserved", 1)),
     ("counter.reserved:", ("counter.reserved", 1)),
     ("counter.reserved:x", ("counter.reserved", 1))],  # not a count: the first hit
)  # fmt: skip
def test_parse_crash_target(value: str, target: tuple[str, int] | None) -> None:
    assert _parse(value) == target


@pytest.mark.parametrize(
    ("value", "stall"),
    [("", None), ("spawn.child.exec", ("spawn.child.exec", 3600.0)),
     ("spawn.child.cwd:2.5", ("spawn.child.cwd", 2.5)),
     ("spawn.child.cwd:x", ("spawn.child.cwd", 3600.0))],
)  # fmt: skip
def test_parse_stall_target(value: str, stall: tuple[str, float] | None) -> None:
    assert _parse_stall(value) == stall
