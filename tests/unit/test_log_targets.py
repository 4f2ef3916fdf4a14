"""The journal and syslog handlers' datagrams: fields, escaping, tracebacks, the rate limit,
and how `auto` picks a target."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from logoutd.daemon.logs import (
    JournalHandler,
    RateLimit,
    SyslogHandler,
    choose_target,
    setup_logging,
)
from logoutd.errors import LogoutdError
from logoutd.escape import EscapingFormatter
from logoutd.logfields import fields
from tests.journal import parse_journal


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[Path, socket.socket]]:
    path = tmp_path / "log.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield path, sock
    sock.close()


def _logger(handler: logging.Handler) -> Iterator[logging.Logger]:
    handler.setFormatter(EscapingFormatter("%(message)s"))
    logger = logging.getLogger(f"logoutd.test-targets-{id(handler)}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_journal_fields_escaping_and_tracebacks(receiver) -> None:  # type: ignore[no-untyped-def]
    path, sock = receiver
    fallback = logging.StreamHandler()
    for log in _logger(JournalHandler(path, fallback)):
        log.info("New session %s of user %s.", "c1\x1b[2J", "alice",
                 extra=fields(session="c1", user="alice", uid=1000, leader=42, other="x",
                              signals=["SIGTERM", "SIGHUP"], count=None, **{"not-a-name": 1}))
        record = parse_journal(sock.recv(65536))
        assert record["MESSAGE"] == "New session c1\\x1b[2J of user alice."
        assert record["PRIORITY"] == "6" and record["SYSLOG_IDENTIFIER"] == "logoutd"
        assert (record["SESSION_ID"], record["USER_ID"], record["UID"], record["LEADER"],
                record["SIGNALS"]) == ("c1", "alice", "1000", "42", "SIGTERM,SIGHUP")
        assert record["OTHER"] == "x" and "COUNT" not in record  # None left out
        assert "NOT-A-NAME" not in record  # not a journal field name: dropped
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("Internal error")
        record = parse_journal(sock.recv(65536))
        assert record["PRIORITY"] == "3"
        assert record["MESSAGE"].startswith("Internal error\nTraceback")  # the binary form
        assert record["MESSAGE"].endswith("ValueError: boom")


def test_syslog_line_and_its_fields_suffix(receiver) -> None:  # type: ignore[no-untyped-def]
    path, sock = receiver
    for log in _logger(SyslogHandler(path, logging.StreamHandler())):
        log.warning("Session %s: odd.", "c2", extra=fields(session="c2", cause="user said \"go\""))
        line = sock.recv(65536).decode()
        assert line.endswith('Session c2: odd. [SESSION_ID=c2 STOP_CAUSE="user said \\"go\\""]')
        assert line.startswith("<28>logoutd[")  # daemon.warning
        log.debug("plain")
        assert sock.recv(65536).decode().endswith("]: plain")


def test_the_rate_limit_holds_for_a_socket_target(receiver) -> None:  # type: ignore[no-untyped-def]
    path, sock = receiver
    handler = JournalHandler(path, logging.StreamHandler())
    handler.addFilter(RateLimit(window=60))
    for log in _logger(handler):
        for _ in range(5):
            log.error("Cannot accept: EMFILE")
        sock.settimeout(0.2)
        got = []
        try:
            while True:
                got.append(sock.recv(65536))
        except TimeoutError:
            pass
        assert len(got) == 1, got


def test_a_socket_that_goes_away_falls_back_to_stderr(
        receiver, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    path, sock = receiver
    fallback = logging.StreamHandler()  # sys.stderr at call time: captured
    fallback.setFormatter(logging.Formatter("fallback: %(message)s"))
    for log in _logger(SyslogHandler(path, fallback)):
        sock.close()
        path.unlink()
        log.info("one")
        log.info("two")
        err = capsys.readouterr().err
        assert err.count("writing log lines to stderr until it takes them again.") == 1, err
        assert "fallback: one\n" in err and "fallback: two\n" in err


def test_auto_picks_journal_then_syslog_then_stderr(tmp_path: Path, receiver) -> None:  # type: ignore[no-untyped-def]
    sock_path, _ = receiver
    absent = tmp_path / "absent"
    assert choose_target("auto", sock_path, sock_path) == "journal"
    assert choose_target("auto", absent, sock_path) == "syslog"
    assert choose_target("auto", absent, absent) == "stderr"
    assert choose_target("syslog", sock_path, absent) == "syslog"  # named: as asked


def test_a_named_target_that_cannot_be_written_is_an_error(tmp_path: Path) -> None:
    env = {"LOGOUTD_JOURNAL_SOCKET": str(tmp_path / "none")}
    with pytest.raises(LogoutdError) as raised:
        setup_logging("info", "logoutd[1]", "journal", env)
    assert raised.value.message == (f"--log-target journal: cannot write to {tmp_path / 'none'}: "
                                    "No such file or directory.")
