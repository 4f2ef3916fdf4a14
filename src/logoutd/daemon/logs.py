"""The daemon's log: to stderr, the journal or syslog; repeated identical errors are written
once per window, then counted."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import struct
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from logoutd.errors import LogoutdError
from logoutd.escape import EscapingFormatter, cescape
from logoutd.logfields import KEY

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


LOG_TARGETS = ("auto", "journal", "syslog", "stderr")
JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
SYSLOG_SOCKET = Path("/dev/log")
# Other sockets than the standard ones (containers, tests): the daemon's environment only.
JOURNAL_SOCKET_ENV = "LOGOUTD_JOURNAL_SOCKET"
SYSLOG_SOCKET_ENV = "LOGOUTD_SYSLOG_SOCKET"
SEND_TIMEOUT = 0.5  # seconds a full log socket may hold the daemon's loop, per line
RETRY_AFTER = 2.0  # seconds a failing log socket is not tried; its lines go to stderr
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}
_FACILITY_DAEMON = 3
_FIELD_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")  # journald: a letter first
_BARE_VALUE = re.compile(r"[^\s\"\\=\[\]]+")


def _priority(levelno: int) -> int:
    return next((p for lvl, p in sorted(_PRIORITY.items(), reverse=True) if levelno >= lvl), 7)


def record_fields(record: logging.LogRecord) -> dict[str, str]:
    """The structured fields a log call gave with `extra=fields(...)` (logoutd.logfields)."""
    found = getattr(record, KEY, None)
    if not isinstance(found, dict):
        return {}
    return {k: cescape(str(v)) for k, v in found.items() if _FIELD_NAME.fullmatch(str(k))}


class TimestampFormatter(EscapingFormatter):
    """stderr's lines: local time, ISO 8601 with milliseconds and the UTC offset."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


def stderr_formatter(prefix: str) -> logging.Formatter:
    return TimestampFormatter(f"%(asctime)s {prefix}: %(levelname)s %(message)s")


class _DatagramHandler(logging.Handler):
    """One AF_UNIX datagram per record to a log socket. A line the socket refuses (its daemon
    restarted, its queue stayed full for SEND_TIMEOUT) goes to stderr instead, and so does
    every line for RETRY_AFTER, with one notice when that starts and one when the socket takes
    lines again."""

    what = "log socket"

    def __init__(self, path: Path, fallback: logging.Handler) -> None:
        super().__init__()
        self.path = path
        self.fallback = fallback
        self._failing = False
        self._retry_at = 0.0
        self._sock = self._connect()

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(SEND_TIMEOUT)
            sock.connect(str(self.path))
        except OSError:
            sock.close()
            raise
        return sock

    def payload(self, record: logging.LogRecord) -> bytes:
        raise NotImplementedError

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = self.payload(record)
        except Exception:
            self.handleError(record)
            return
        now = time.monotonic()
        if self._failing and now < self._retry_at:
            self.fallback.handle(record)  # a stalled socket must not stall every line
            return
        error: OSError | None = None
        for attempt in range(1 if self._failing else 2):
            try:
                if attempt or self._failing:  # its daemon may have restarted: reconnect
                    self._sock.close()
                    self._sock = self._connect()
                self._sock.send(data)
                break
            except OSError as e:
                error = e
        else:
            if not self._failing:
                self._failing = True
                sys.stderr.write(f"logoutd: {self.what} {self.path}: {error}; writing log "
                                 "lines to stderr until it takes them again.\n")
            self._retry_at = time.monotonic() + RETRY_AFTER
            self.fallback.handle(record)
            return
        if self._failing:
            self._failing = False
            sys.stderr.write(f"logoutd: {self.what} {self.path} takes log lines again.\n")

    def close(self) -> None:
        self._sock.close()
        super().close()


class JournalHandler(_DatagramHandler):
    """journald's native protocol (systemd.journal-fields(7)): one `FIELD=value` per line, or
    FIELD, a newline, the value's length as 64-bit little-endian and the value, for values
    with a newline (tracebacks)."""

    what = "journal socket"

    def payload(self, record: logging.LogRecord) -> bytes:
        message = self.format(record)
        fields = {"MESSAGE": message, "PRIORITY": str(_priority(record.levelno)),
                  "SYSLOG_IDENTIFIER": "logoutd", "SYSLOG_FACILITY": str(_FACILITY_DAEMON),
                  "CODE_FILE": record.pathname, "CODE_LINE": str(record.lineno),
                  "CODE_FUNC": record.funcName, "LOGOUTD_LOGGER": record.name}
        fields.update(record_fields(record))
        out = bytearray()
        for name, value in fields.items():
            data = value.encode("utf-8", "replace")
            if b"\n" in data:
                out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
            else:
                out += name.encode() + b"=" + data + b"\n"
        return bytes(out)


class SyslogHandler(_DatagramHandler):
    """The local syslog socket, as syslog(3) writes it: `<PRI>logoutd[PID]: message`; the
    structured fields follow the message as ` [KEY=value …]` (values with spaces quoted)."""

    what = "syslog socket"

    def payload(self, record: logging.LogRecord) -> bytes:
        message = self.format(record).replace("\n", " | ")  # one datagram, one line
        suffix = " ".join(f"{k}={v if _BARE_VALUE.fullmatch(v) else json.dumps(v)}"
                          for k, v in record_fields(record).items())
        pri = _FACILITY_DAEMON * 8 + _priority(record.levelno)
        line = f"<{pri}>logoutd[{os.getpid()}]: {message}{f' [{suffix}]' if suffix else ''}"
        return line.encode("utf-8", "replace")


def socket_paths(env: Mapping[str, str]) -> tuple[Path, Path]:
    """The journal's and syslog's sockets: the standard ones unless the environment says."""
    return (Path(env.get(JOURNAL_SOCKET_ENV) or JOURNAL_SOCKET),
            Path(env.get(SYSLOG_SOCKET_ENV) or SYSLOG_SOCKET))


def choose_target(target: str, journal: Path, syslog: Path) -> str:
    """`auto`: the journal if its socket exists, else syslog if /dev/log exists, else stderr."""
    if target != "auto":
        return target
    if journal.is_socket():
        return "journal"
    if syslog.exists():
        return "syslog"
    return "stderr"


def setup_logging(level: str, prefix: str, target: str = "stderr",
                  env: Mapping[str, str] | None = None) -> RateLimit:
    """Log to the target through one rate limit for every logger (logoutd's, asyncio's).
    A journal or syslog socket that cannot be reached at start is a LogoutdError when it was
    asked for by name; `auto` only picks sockets that exist and falls back to stderr."""
    journal, syslog = socket_paths(os.environ if env is None else env)
    chosen = choose_target(target, journal, syslog)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(stderr_formatter(prefix))
    handler: logging.Handler = stderr
    if chosen in ("journal", "syslog"):
        path = journal if chosen == "journal" else syslog
        kind = JournalHandler if chosen == "journal" else SyslogHandler
        try:
            handler = kind(path, fallback=stderr)
        except OSError as e:
            reason = e.strerror or str(e)
            if target == chosen:
                raise LogoutdError(f"--log-target {target}: cannot write to {path}: {reason}."
                                   ) from None
            sys.stderr.write(f"logoutd: --log-target auto: cannot write to {path}: {reason}; "
                             "logging to stderr.\n")
            handler = stderr
        else:
            handler.setFormatter(EscapingFormatter("%(message)s"))
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
    if isinstance(exc, ConnectionError) and "never retrieved" in message:
        # A stream's "closed" future holding the error of a peer that went away (EPIPE while
        # answering a client that hung up), found by the garbage collector: not a daemon error.
        _asyncio_log.debug("A client connection ended with %s.", type(exc).__name__)
        return
    _asyncio_log.error(message[:cut].replace("%", "%%") + "%s", message[cut:], extra=RATELIMIT,
                       exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None)
