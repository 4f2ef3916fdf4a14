"""The daemon's log rate limit: a storm of identical errors is one line per window plus a count."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Iterator

import pytest

from logoutd.daemon.logs import RATELIMIT, RateLimit, loop_exception_handler


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.tracebacks = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()}")
        self.tracebacks += record.exc_info is not None


@pytest.fixture
def world() -> Iterator[tuple[RateLimit, Capture, Clock, list[tuple[float, Callable[[], None]]]]]:
    clock = Clock()
    limit = RateLimit(window=10.0, clock=clock)
    timers: list[tuple[float, Callable[[], None]]] = []
    limit.call_later = lambda delay, fn: timers.append((clock.t + delay, fn))
    capture = Capture()
    capture.addFilter(limit)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    yield limit, capture, clock, timers
    root.removeHandler(capture)
    root.setLevel(old_level)


def test_a_storm_of_one_error_is_one_line_then_a_count(world) -> None:  # type: ignore[no-untyped-def]
    _, capture, clock, timers = world
    log = logging.getLogger("logoutd.test")
    for _ in range(1000):
        log.error("Cannot accept a connection on %s: %s", "/run/x.sock", "Too many open files")
        clock.t += 0.001
    assert capture.lines == [
        "logoutd.test ERROR Cannot accept a connection on /run/x.sock: Too many open files"]
    assert len(timers) == 1  # one flush owed, at the end of the window
    due, flush = timers.pop()
    assert due >= 1010.0
    clock.t = due
    flush()
    assert capture.lines[1] == ("logoutd.test ERROR Cannot accept a connection on /run/x.sock: "
                                "Too many open files … (999 similar messages suppressed)")
    assert not timers  # nothing more owed: no timer runs while idle
    log.error("Cannot accept a connection on %s: %s", "/run/x.sock", "Too many open files")
    assert len(capture.lines) == 3  # a new window


def test_distinct_messages_and_levels_and_loggers_are_not_merged(world) -> None:  # type: ignore[no-untyped-def]
    _, capture, _, _ = world
    log = logging.getLogger("logoutd.test")
    for path in ("a.json", "b.json", "c.json"):  # three facts with one template
        log.warning("%s: unreadable state file, ignoring it: %s", path, "bad")
    log.error("%s: unreadable state file, ignoring it: %s", "a.json", "bad")
    logging.getLogger("logoutd.other").warning("%s: unreadable state file, ignoring it: %s",
                                               "a.json", "bad")
    assert len(capture.lines) == 5


def test_info_and_debug_pass_unless_marked(world) -> None:  # type: ignore[no-untyped-def]
    _, capture, clock, timers = world
    log = logging.getLogger("logoutd.test")
    for _ in range(5):
        log.info("Config file reloaded.")
    assert len(capture.lines) == 5
    for pid in range(100, 200):  # a user's requests: one template, many pids
        log.debug("Request from uid %d pid %d failed: %s", 1000, pid, "bad", extra=RATELIMIT)
    assert capture.lines[5:] == ["logoutd.test DEBUG Request from uid 1000 pid 100 failed: bad"]
    clock.t += 11
    log.debug("Request from uid %d pid %d failed: %s", 1000, 7, "bad", extra=RATELIMIT)
    assert capture.lines[6] == ("logoutd.test DEBUG Request from uid 1000 pid 7 failed: bad … "
                                "(99 similar messages suppressed before this one)")
    clock.t = max(d for d, _ in timers)
    for _, fn in timers:
        fn()
    assert len(capture.lines) == 7  # already counted: no second summary


def test_first_traceback_only(world) -> None:  # type: ignore[no-untyped-def]
    _, capture, _, _ = world
    log = logging.getLogger("logoutd.test")
    for _ in range(50):
        try:
            raise RecursionError("deep")
        except RecursionError:
            log.exception("Internal error answering %s from uid %d pid %d", "status", 1, 2,
                          extra=RATELIMIT)
    assert capture.tracebacks == 1 and len(capture.lines) == 1


def test_asyncio_errors_go_through_the_limit(world) -> None:  # type: ignore[no-untyped-def]
    _, capture, _, _ = world
    loop = asyncio.new_event_loop()
    try:
        for i in range(1024):
            loop_exception_handler(loop, {"message": "socket.accept() out of system resource",
                                          "exception": OSError(24, "Too many open files"),
                                          "socket": f"<socket fd={i}>"})
        for fd in range(100):  # asyncio's own message differs in the fd: still one kind
            loop_exception_handler(loop, {
                "message": f"Exception in callback _SelectorTransport._add_reader({fd}, <x>)",
                "exception": OSError(9, "Bad file descriptor")})
    finally:
        loop.close()
    errors = [line for line in capture.lines if " ERROR " in line]
    assert errors == ["asyncio ERROR socket.accept() out of system resource",
                      "asyncio ERROR Exception in callback _SelectorTransport._add_reader(0, <x>)"]
    assert capture.tracebacks == 2


def test_a_vanished_clients_unretrieved_error_is_no_daemon_error(world) -> None:  # type: ignore[no-untyped-def]
    """A stream's closed future holding EPIPE, collected unretrieved: asyncio reports it, the
    daemon logs it at debug only (a peer hung up while answered); other such futures still
    are errors."""
    _, capture, _, _ = world
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(loop_exception_handler)
    try:
        for exc in (BrokenPipeError(32, "Broken pipe"), ValueError("a bug")):
            future = loop.create_future()
            future.set_exception(exc)
            del future
            gc.collect()
    finally:
        loop.close()
    errors = [line for line in capture.lines if " ERROR " in line]
    assert errors == ["asyncio ERROR Future exception was never retrieved"]
    assert capture.tracebacks == 1
