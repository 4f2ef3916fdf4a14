"""The daemon's log targets (issue 13, item 3): the journal's native protocol and syslog on
private sockets, receiving the real daemon's datagrams with the structured fields of a real
login's create/stop/kill; timestamps on stderr; a target that cannot be written."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness.checks import wait_gone, wait_session_removed
from tests.integration.harness.daemon import Daemon, src_dir
from tests.integration.harness.login import script
from tests.integration.harness.procs import wait_for
from tests.journal import parse_journal

STDERR_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d logoutd\[\d+\]: "
    r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


class Receiver:
    """A private log socket (AF_UNIX datagrams), read all the time by a thread, as journald or
    syslogd read theirs: a socket read only now and then holds 10 datagrams (max_dgram_qlen),
    and the daemon's next line then goes to stderr (its fallback), as it should."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.datagrams: list[bytes] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                self.datagrams.append(self.sock.recv(1 << 20))
            except TimeoutError:
                continue
            except OSError:
                return

    def drain(self) -> list[bytes]:
        return list(self.datagrams)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self.sock.close()
        self.path.unlink(missing_ok=True)


@pytest.fixture
def receiver(env) -> Iterator[Receiver]:  # type: ignore[no-untyped-def]
    r = Receiver(env.tmp / "log.sock")
    yield r
    r.close()


def _login_logout(env, pam, user, daemon: Daemon) -> dict:  # type: ignore[no-untyped-def]
    """A real su login that leaves a nohup job, then its logout (the job is signalled)."""
    login = env.login("su", pam, user, script("nohup"))
    procs = login.wait_ready()
    env.track(procs.values())
    session = daemon.wait_session(user.name)
    assert login.logout() == 0, login.report()
    wait_gone(env, list(procs.values()), timeout=15, what="the nohup job")
    wait_session_removed(env, daemon, session, timeout=20)
    return session  # type: ignore[no-any-return]


def _started(env, target: str, sock_env: dict[str, str]) -> Daemon:  # type: ignore[no-untyped-def]
    daemon = env.daemon(start=False)
    daemon.log_target = target
    daemon.start(env=sock_env)
    return daemon


def test_journal_gets_native_datagrams_with_the_sessions_fields(env, user, pam, receiver) -> None:  # type: ignore[no-untyped-def]
    daemon = _started(env, "journal", {"LOGOUTD_JOURNAL_SOCKET": str(receiver.path)})
    session = _login_logout(env, pam, user, daemon)
    sid = session["id"]

    def records() -> list[dict[str, str]] | None:
        found = [parse_journal(d) for d in receiver.drain()]
        done = any(r["MESSAGE"] == f"Removed session {sid}." for r in found)
        return found if done else None
    found = wait_for(records, 15, "the journal datagram of the session's removal")
    assert all(r["SYSLOG_IDENTIFIER"] == "logoutd" for r in found)
    by_start = {r["MESSAGE"].split(":")[0].split(" (")[0]: r for r in found}
    new = by_start[f"New session {sid} of user {user.name}."]
    assert new["PRIORITY"] == "6"
    assert (new["SESSION_ID"], new["USER_ID"], new["UID"], new["LEADER"]) == (
        sid, user.name, str(user.uid), str(session["leader"])), new
    stopping = by_start[f"Session {sid} of user {user.name} stopping"]
    assert stopping["STOP_CAUSE"] and stopping["STOP_ACTION"] == "kill", stopping
    assert stopping["SESSION_ID"] == sid and stopping["USER_ID"] == user.name
    sent = by_start[f"Session {sid}"]
    assert sent["SIGNALS"] == "SIGTERM,SIGCONT,SIGHUP" and int(sent["COUNT"]) >= 1, sent
    assert sent["SESSION_ID"] == sid
    assert "CODE_FILE" in new and "CODE_LINE" in new
    # Nothing of it on stderr: the journal took every line.
    assert f"New session {sid}" not in daemon.log()


def test_journal_going_away_falls_back_to_stderr_and_back(env, receiver) -> None:  # type: ignore[no-untyped-def]
    daemon = _started(env, "journal", {"LOGOUTD_JOURNAL_SOCKET": str(receiver.path)})
    wait_for(lambda: any(b"MESSAGE=logoutd " in d for d in receiver.drain()), 10,
             "the start-up line in the journal")
    receiver.close()
    daemon.reload()
    daemon.wait_for(lambda: "Config file reloaded." in daemon.log(), 15, "the reload line on stderr")
    log = daemon.log()
    assert log.count(f"logoutd: journal socket {receiver.path}: ") == 1, log
    assert "writing log lines to stderr until it takes them again." in log
    [line] = [x for x in log.splitlines() if "Config file reloaded." in x]
    assert STDERR_LINE.match(line), line

    # Back: tried again RETRY_AFTER (2 s) after the failure; until then lines stay on stderr.
    again = Receiver(receiver.path)
    try:
        def in_journal() -> bool:
            daemon.reload()
            time.sleep(0.5)
            return any(b"MESSAGE=Config file reloaded." in d for d in again.drain())
        wait_for(in_journal, 20, "a reload line in the journal again")
        assert f"logoutd: journal socket {receiver.path} takes log lines again." in daemon.log()
    finally:
        again.close()


def test_syslog_gets_rfc3164_lines_with_a_fields_suffix(env, user, pam, receiver) -> None:  # type: ignore[no-untyped-def]
    # auto: no journal socket, the private /dev/log exists -> syslog
    daemon = _started(env, "auto", {"LOGOUTD_JOURNAL_SOCKET": str(env.tmp / "absent.sock"),
                                    "LOGOUTD_SYSLOG_SOCKET": str(receiver.path)})
    assert daemon.popen is not None
    session = _login_logout(env, pam, user, daemon)
    sid, pid = session["id"], daemon.popen.pid

    def lines() -> list[str] | None:
        found = [d.decode() for d in receiver.drain()]
        return found if any(f"Removed session {sid}." in x for x in found) else None
    found = wait_for(lines, 15, "the syslog line of the session's removal")
    new = f"<30>logoutd[{pid}]: New session {sid} of user {user.name}. " \
          f"[SESSION_ID={sid} USER_ID={user.name} UID={user.uid} LEADER={session['leader']}]"
    assert new in found, found
    [sent] = [x for x in found if f"Session {sid}: sent" in x]
    assert re.search(r" \[SESSION_ID=\S+ USER_ID=\S+ SIGNALS=SIGTERM,SIGCONT,SIGHUP COUNT=\d+\]$",
                     sent), sent
    assert all(re.match(rf"<\d+>logoutd\[{pid}\]: ", x) for x in found), found
    assert f"New session {sid}" not in daemon.log()


def test_stderr_lines_carry_timestamps(env, daemon: Daemon) -> None:  # type: ignore[no-untyped-def]
    lines = [x for x in daemon.log().splitlines() if not x.startswith("==== harness")]
    assert lines, daemon.log()
    starts = [x for x in lines if "logoutd[" in x]
    assert starts and all(STDERR_LINE.match(x) for x in starts), starts


@pytest.mark.parametrize("target", ["journal", "syslog"])
def test_an_unreachable_target_asked_for_by_name_refuses_to_start(env, target: str) -> None:  # type: ignore[no-untyped-def]
    daemon = env.daemon(start=False)
    daemon.log_target = target
    missing = env.tmp / "missing.sock"
    environ = dict(os.environ, PYTHONPATH=str(src_dir()),
                   LOGOUTD_JOURNAL_SOCKET=str(missing), LOGOUTD_SYSLOG_SOCKET=str(missing))
    environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
    before = sorted(os.listdir(daemon.runtime_dir))
    result = subprocess.run(daemon.argv(), env=environ, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1, result
    assert result.stderr == (f"logoutd: --log-target {target}: cannot write to {missing}: "
                             "No such file or directory.\n"), result.stderr
    assert sorted(os.listdir(daemon.runtime_dir)) == before
    assert not daemon.socket.exists()
