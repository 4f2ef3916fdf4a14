"""utmp's entries (system/utmp.py) and the inotify watch (daemon/utmpwatch.py) over a core on
fakes: a real file, written as glibc lays out `struct utmp`, and a real inotify."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from logoutd.core.request import SessionRequest
from logoutd.core.sessions import Session
from logoutd.daemon.utmpwatch import UtmpWatch
from logoutd.system.inotify import Inotify
from logoutd.system.utmp import RECORD, USER_PROCESS, user_processes
from tests.unit.conftest import Core, make_core

DEAD_PROCESS = 8


def record(pid: int, line: str, ut_type: int = USER_PROCESS, user: str = "alice") -> bytes:
    return RECORD.pack(ut_type, pid, line.encode(), b"ts/1", user.encode(), b"127.0.0.1",
                       0, 0, 0, 1_700_000_000, 0, 0, 0, 0, 0, b"")


def test_user_process_entries_are_read_and_others_skipped(tmp_path: Path) -> None:
    utmp = tmp_path / "utmp"
    assert RECORD.size == 384  # glibc's struct utmp on Linux (x86-64, i386, arm64)
    assert user_processes(utmp) == []  # no file: no entries
    utmp.write_bytes(record(10, "pts/1") + record(11, "pts/2", DEAD_PROCESS)
                     + record(12, "/dev/tty3") + record(0, "pts/9") + record(13, "")
                     + record(14, "pts/4")[:100])  # the last one torn by a writer
    assert user_processes(utmp) == [(10, "pts/1"), (12, "tty3")]


def _session(core: Core) -> tuple[Session, int]:
    leader = core.world.spawn(uid=0)
    session = core.manager.create_session(SessionRequest(uid=1000, leader=leader.pid,
                                                         service="sshd", tty="ssh"))
    shell = core.world.spawn(uid=1000, cgroup=core.world.abs(session.scope))
    return session, shell.pid


async def _settled(core: Core) -> tuple[Session, int]:
    """A new session, once the read its start schedules has run: what follows is the watch's."""
    made = _session(core)
    await asyncio.sleep(0.05)
    return made


def _run(test: Callable[[Core, UtmpWatch, Path], object], tmp_path: Path) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        core = make_core()
        inotify = Inotify()
        loop.add_reader(inotify.fd, inotify.dispatch)
        watch = UtmpWatch(tmp_path / "run" / "utmp", inotify, core.manager, lambda f: f)
        (tmp_path / "run").mkdir()
        try:
            watch.start()
            result = test(core, watch, watch.path)
            if asyncio.iscoroutine(result):
                await result
        finally:
            watch.close()
            loop.remove_reader(inotify.fd)
            inotify.close()
    asyncio.run(main())


async def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_a_utmp_created_later_then_changed_then_replaced_is_followed(tmp_path: Path) -> None:
    async def test(core: Core, watch: UtmpWatch, utmp: Path) -> None:
        first, pid1 = await _settled(core)
        assert first.tty == "ssh"  # no utmp yet
        utmp.write_bytes(record(pid1, "pts/1"))  # created: seen through the directory's watch
        await _until(lambda: first.tty == "pts/1")

        second, pid2 = await _settled(core)
        with utmp.open("ab") as f:  # sshd appends (or rewrites a slot) in place
            f.write(record(pid2, "pts/2"))
        await _until(lambda: second.tty == "pts/2")

        third, pid3 = await _settled(core)
        new = utmp.with_name("utmp.new")
        new.write_bytes(utmp.read_bytes() + record(pid3, "pts/3"))
        os.rename(new, utmp)  # replaced: the old inode's watch is gone, the new one is watched
        await _until(lambda: third.tty == "pts/3")

        fourth, pid4 = await _settled(core)
        with utmp.open("ab") as f:  # and the replaced file is watched in turn
            f.write(record(pid4, "pts/4"))
        await _until(lambda: fourth.tty == "pts/4")

        utmp.unlink()
        utmp.write_bytes(record(pid4, "pts/4"))  # removed, then back: still followed
        fifth, pid5 = await _settled(core)
        with utmp.open("ab") as f:
            f.write(record(pid5, "pts/5"))
        await _until(lambda: fifth.tty == "pts/5")

    _run(test, tmp_path)


def test_an_entry_written_before_the_session_is_read_when_the_session_starts(
        tmp_path: Path) -> None:
    async def test(core: Core, watch: UtmpWatch, utmp: Path) -> None:
        leader = core.world.spawn(uid=0)
        utmp.write_bytes(record(leader.pid, "pts/6"))
        await asyncio.sleep(0.05)
        session = core.manager.create_session(SessionRequest(uid=1000, leader=leader.pid,
                                                             service="sshd"))
        await _until(lambda: session.tty == "pts/6")

    _run(test, tmp_path)


def test_an_unreadable_utmp_is_said_once_and_changes_nothing(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    async def test(core: Core, watch: UtmpWatch, utmp: Path) -> None:
        session, _pid = _session(core)
        utmp.mkdir()  # reading it fails (EISDIR)
        caplog.set_level(logging.WARNING, "logoutd")
        watch.read()
        watch.read()
        assert session.tty == "ssh"
        assert [r.getMessage() for r in caplog.records].count(
            f"Cannot read {utmp}, sessions get no tty from it: Is a directory") == 1

    _run(test, tmp_path)
