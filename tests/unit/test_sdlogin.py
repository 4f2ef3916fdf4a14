"""sd-login's files: their text as logind 252 writes it, kept in step with the core."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from logoutd.config.model import SdLoginFiles
from logoutd.config.values import BadValue, parse_sd_login_files
from logoutd.core.request import SessionRequest
from logoutd.core.sessions import Session
from logoutd.daemon.sdlogin import (
    Observing,
    SdLoginExport,
    cescape,
    export_wanted,
    other_login_manager,
    pid1_root,
    sd_login_root_problem,
    valid_slice_name,
)
from tests.fakes import FakeStore
from tests.unit.conftest import make_core

BOOT = 999_000.0  # FakeClock starts at 1_000_000: sessions are 1000 s after boot


class ObservingStore(Observing, FakeStore):
    """FakeStore observed as the daemon's ObservedStore is."""

class Exported:
    def __init__(self, tmp_path: Path) -> None:
        self.core = make_core()
        self.store = ObservingStore()
        self.core.store = self.store
        self.core.ports.store = self.store
        self.core.manager = self.core.restart()
        self.pending: list[Callable[[], None]] = []
        self.root = tmp_path / "systemd"
        self.export = SdLoginExport(self.root, self.core.manager, self.pending.append)
        self.export._boot = BOOT
        self.export.start()
        self.store.observer = self.export.changed

    def run_loop(self) -> None:
        while self.pending:
            self.pending.pop(0)()

    def open(self, uid: int = 1000, **kw: Any) -> tuple[Session, Any]:
        leader = self.core.world.spawn(uid=0)
        session = self.core.manager.create_session(
            SessionRequest(uid=uid, leader=leader.pid, service="sshd", **kw))
        self.run_loop()
        return session, leader

    def file(self, kind: str, key: object) -> str | None:
        path = self.root / kind / str(key)
        return path.read_text() if path.exists() else None

    def names(self, kind: str) -> list[str]:
        return sorted(p.name for p in (self.root / kind).iterdir())


@pytest.fixture
def ex(tmp_path: Path) -> Exported:
    return Exported(tmp_path)


def test_session_file_has_logind_keys_and_spelling(ex: Exported) -> None:
    session, leader = ex.open(tty="/dev/pts/3", remote_host="host.example", remote_user="r u")
    assert ex.file("sessions", session.id) == (
        "# This is private data. Do not parse.\n"
        "UID=1000\nUSER=alice\nACTIVE=1\nIS_DISPLAY=0\nSTATE=active\nREMOTE=1\n"
        "TYPE=tty\nORIGINAL_TYPE=tty\nCLASS=user\nSCOPE=session-c1.scope\n"
        "TTY=pts/3\nTTY_VALIDITY=from-pam\nREMOTE_HOST=host.example\nREMOTE_USER=r u\n"
        "SERVICE=sshd\nPOSITION=0\n"
        f"LEADER={leader.pid}\nREALTIME=1000000000000\nMONOTONIC=1000000000\n"
    )
    assert (ex.root / "sessions" / session.id).stat().st_mode & 0o777 == 0o644


def test_tty_validity_follows_where_the_tty_came_from(ex: Exported) -> None:
    from logoutd.core.utmpttys import apply_utmp

    session, leader = ex.open(tty="ssh")
    apply_utmp(ex.core.manager, [(leader.pid, "pts/7")])
    ex.run_loop()
    text = ex.file("sessions", session.id) or ""
    assert "TTY=pts/7\nTTY_VALIDITY=from-utmp\n" in text
    apply_utmp(ex.core.manager, [(leader.pid, "pts/8")])  # a second entry that disagrees
    ex.run_loop()
    text = ex.file("sessions", session.id) or ""
    assert "TTY=" not in text.replace("TTY_VALIDITY", "")
    assert "TTY_VALIDITY=utmp-inconsistent\n" in text


def test_user_file_lists_sessions_newest_first(ex: Exported) -> None:
    first, _ = ex.open()
    second, _ = ex.open()
    first.release()
    ex.run_loop()
    assert "STATE=closing\n" in (ex.file("sessions", first.id) or "")
    assert ex.file("users", 1000) == (
        "# This is private data. Do not parse.\n"
        "NAME=alice\nSTATE=active\nSTOPPING=no\nRUNTIME=/run/user/1000\n"
        "REALTIME=1000000000000\nMONOTONIC=1000000000\n"
        f"SESSIONS={second.id} {first.id}\nSEATS=\nACTIVE_SESSIONS={second.id}\n"
        f"ONLINE_SESSIONS={second.id}\nACTIVE_SEATS=\nONLINE_SEATS=\n"
    )


def test_files_go_with_the_session_and_the_user(ex: Exported) -> None:
    session, leader = ex.open()
    other, _ = ex.open(uid=1001)
    assert ex.names("sessions") == sorted([session.id, other.id])
    assert ex.names("users") == ["1000", "1001"]
    ex.core.world.exit(leader.pid)
    ex.core.clock.advance(60)  # UserStopDelaySec=
    ex.run_loop()
    assert ex.names("sessions") == [other.id]
    assert ex.names("users") == ["1001"]


def test_one_flush_per_loop_iteration_and_no_rewrite_without_change(ex: Exported) -> None:
    session, _ = ex.open()
    path = ex.root / "sessions" / session.id
    before = path.stat().st_mtime_ns, path.stat().st_ino
    session.save()
    session.save()
    assert len(ex.pending) == 1
    ex.run_loop()
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before


def test_start_reconciles_stale_and_missing_files(ex: Exported) -> None:
    session, _ = ex.open()
    (ex.root / "sessions" / session.id).unlink()
    (ex.root / "sessions" / "c99").write_text("STATE=active\n")
    (ex.root / "users" / "4242").write_text("STATE=active\n")
    (ex.root / "users" / "junk").write_text("")
    again = SdLoginExport(ex.root, ex.core.restart(), ex.pending.append)
    again.start()
    assert ex.names("sessions") == [session.id]
    assert ex.names("users") == ["1000"]


def test_cescape_is_systemds() -> None:
    assert cescape('a b\t"x\'\\') == 'a b\\t\\"x\\\'\\\\'
    assert cescape("é\x01\x7f") == "\\303\\251\\001\\177"


@pytest.mark.parametrize(("root", "pid1", "parsed"), [
    ("/", "/", True),
    ("/", "/init.scope", True),
    ("/logoutd.slice", "/", True),
    ("/a.slice/a-b.slice", "/init.scope", True),
    ("/logoutd-test-ab", "/", False),
    ("/logoutd", "/", False),
    ("/machine/logoutd.slice", "/machine/init.scope", True),  # a container: PID 1's root
    ("/machine/logoutd.slice", "/", False),
    ("/x@y.slice", "/", False),
    ("/system.slice/logoutd.service", "/init.scope", False),  # systemd-delegated
])
def test_which_roots_libsystemd_parses(root: str, pid1: str, parsed: bool) -> None:
    problem = sd_login_root_problem(root, pid1)
    assert (problem is None) is parsed, problem
    if problem is not None:
        assert root in problem and "docs/install.md" in problem


def test_slice_names_and_pid1_root() -> None:
    assert valid_slice_name("user.slice") and valid_slice_name("_x.slice")
    assert not valid_slice_name(".slice") and not valid_slice_name("user.scope")
    assert pid1_root("/init.scope") == "/" and pid1_root("/lxc/system.slice") == "/lxc"


def test_settings_and_detection(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert parse_sd_login_files("auto") is SdLoginFiles.AUTO
    assert parse_sd_login_files("on") is SdLoginFiles.YES
    assert parse_sd_login_files("0") is SdLoginFiles.NO
    with pytest.raises(BadValue):
        parse_sd_login_files("sometimes")
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "comm").write_text("init\n")
    (tmp_path / "self" / "ns").mkdir(parents=True)
    (tmp_path / "self" / "ns" / "pid").symlink_to("pid:[4026531836]")
    booted = tmp_path / "run-systemd-system"
    assert other_login_manager(tmp_path, booted) is None
    (tmp_path / "76" / "ns").mkdir(parents=True)  # a container's logind: its own pid namespace
    (tmp_path / "76" / "comm").write_text("systemd-logind\n")
    (tmp_path / "76" / "ns" / "pid").symlink_to("pid:[4026532999]")
    assert other_login_manager(tmp_path, booted) is None
    (tmp_path / "77" / "ns").mkdir(parents=True)
    (tmp_path / "77" / "comm").write_text("elogind-daemon\n")
    (tmp_path / "77" / "ns" / "pid").symlink_to("pid:[4026531836]")
    assert other_login_manager(tmp_path, booted) == "elogind-daemon (pid 77)"
    booted.mkdir()
    assert other_login_manager(tmp_path, booted) == f"systemd ({booted} exists)"
    running: Callable[[], str | None] = lambda: "systemd-logind (pid 5)"  # noqa: E731
    with caplog.at_level(logging.INFO, logger="logoutd"):
        assert not export_wanted(SdLoginFiles.AUTO, running)
    assert "systemd-logind (pid 5) runs" in caplog.text
    assert export_wanted(SdLoginFiles.YES, running)
    assert export_wanted(SdLoginFiles.AUTO, lambda: None)
    assert not export_wanted(SdLoginFiles.NO, lambda: None)
