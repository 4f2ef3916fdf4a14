"""The daemon's log: repeated identical errors are written once per window, then counted."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from logoutd.escape import EscapingFormatter

LOG_WINDOW = 10.0  # seconds: one message of a kind per window, then "(N similar … suppressed)"
MAX_KINDS = 1024  # kinds remembered at once (templates are few; this only bounds a surprise)

# A record with extra={"ratelimit": True} is limited whatever its level: lines a user can
# trigger at will (a failed request, a dropped connection).
RATELIMIT = {"ratelimit": True}
_Key = tuple[str, int, str]


@dataclass
class _Window:
    start: float
    suppressed: int = 0
    last: str = ""  # the last suppressed message, formatted, for the summary line


class RateLimit(logging.Filter):
    """Lets through the first record of a kind per window and counts the rest, reported as
    "… (N similar messages suppressed)" when the window ends. Limited: warnings and errors,
    of a kind = (logger, level, message as written), and records marked RATELIMIT, of a kind =
    (logger, level, message template), since what a user triggers differs in pids and uids."""

    def __init__(self, window: float = LOG_WINDOW, clock: Callable[[], float] = time.monotonic,
                 ) -> None:
        super().__init__()
        self.window = window
        self._clock = clock
        self._kinds: dict[_Key, _Window] = {}
        # Set by the runtime once a loop runs, so a window's count is written when it ends
        # rather than with the next message of its kind (no timer runs unless one is owed).
        self.call_later: Callable[[float, Callable[[], None]], Any] | None = None
        self._flush_pending = False

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "ratelimit_summary", False):
            return True
        if getattr(record, "ratelimit", False):
            key = (record.name, record.levelno, str(record.msg))
        elif record.levelno >= logging.WARNING:
            # Distinct facts share templates ("%s: unreadable state file"): only the same
            # message, repeated, is a storm.
            key = (record.name, record.levelno, record.getMessage())
        else:
            return True
        now = self._clock()
        kind = self._kinds.get(key)
        if kind is not None and now - kind.start < self.window:
            kind.suppressed += 1
            kind.last = record.getMessage()
            self._schedule_flush(kind.start + self.window - now)
            return False
        if kind is not None and kind.suppressed:
            record.msg = f"{record.msg} … ({_similar(kind.suppressed)} before this one)"
        if len(self._kinds) >= MAX_KINDS:
            self._forget_expired(now)
        if len(self._kinds) < MAX_KINDS:  # else: too many kinds at once to remember, let it be
            self._kinds[key] = _Window(now)
        return True

    def flush(self) -> None:
        """Write the count of every window that has ended with suppressed messages."""
        self._flush_pending = False
        now = self._clock()
        for (name, level, _template), kind in list(self._kinds.items()):
            if kind.suppressed and now - kind.start >= self.window:
                logging.getLogger(name).log(level, "%s … (%s)", kind.last, _similar(kind.suppressed),
                                            extra={"ratelimit_summary": True})
                kind.suppressed = 0
        self._forget_expired(now)
        owed = [k.start + self.window - now for k in self._kinds.values() if k.suppressed]
        if owed:
            self._schedule_flush(min(owed))

    def _schedule_flush(self, delay: float) -> None:
        if self.call_later is not None and not self._flush_pending:
            self._flush_pending = True
            self.call_later(max(0.0, delay) + 0.01, self.flush)

    def _forget_expired(self, now: float) -> None:
        for key, kind in list(self._kinds.items()):
            if not kind.suppressed and now - kind.start >= self.window:
                del self._kinds[key]


def _similar(n: int) -> str:
    return f"{n} similar message{'s' if n != 1 else ''} suppressed"


def setup_logging(level: str, prefix: str) -> RateLimit:
    """Log to stderr through one rate limit for every logger (logoutd's, asyncio's)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter(f"{prefix}: %(levelname)s %(message)s"))
    limit = RateLimit()
    handler.addFilter(limit)
    logging.basicConfig(level=level.upper(), handlers=[handler])
    return limit


_asyncio_log = logging.getLogger("asyncio")


def loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's errors (e.g. "socket.accept() out of system resource") through the rate limit:
    the kind is asyncio's fixed message, not the formatted context that differs every time."""
    message = str(context.get("message") or "Unhandled exception in event loop")
    # "Exception in callback Transport._add_reader(12, <...>)": the kind is the text before
    # the first parenthesis or angle bracket, the rest (fds, reprs) differs every time.
    cut = min((i for i in (message.find("("), message.find("<")) if i >= 0), default=len(message))
    exc = context.get("exception")
    _asyncio_log.error(message[:cut].replace("%", "%%") + "%s", message[cut:], extra=RATELIMIT,
                       exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None)
