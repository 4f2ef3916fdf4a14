"""What the daemon reads of users' things stays bounded and never waits (issue 11's audit):
/proc command lines, the tty stat, the audit log's open, RemoveIPC's scan of /dev/shm."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from logoutd.errors import ProcessGone
from logoutd.system.accounts import UserFiles
from logoutd.system.audit import AuditFile
from logoutd.system.procfs import CMDLINE_MAX, EXE_MAX, ProcessTable

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="files of another uid need root")


def test_a_huge_command_line_is_read_only_up_to_the_cap() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                              *(["y" * 4000] * 100)])
    try:
        for _ in range(500):  # until the child has exec'd (before, /proc shows pytest's argv)
            with open(f"/proc/{child.pid}/cmdline", "rb") as f:
                if b"time.sleep" in f.read(200):
                    break
            time.sleep(0.01)
        info = ProcessTable().describe(child.pid)
    finally:
        child.kill()
        child.wait()
    assert info is not None
    assert info.cmdline.endswith("…") and len(info.cmdline.encode()) <= CMDLINE_MAX + 3
    assert info.cmdline.startswith(f"{sys.executable} -c import time")
    assert info.argv[:3] == (sys.executable, "-c", "import time; time.sleep(60)")
    assert sum(len(w) + 1 for w in info.argv) <= CMDLINE_MAX + 1  # the words, as capped
    assert len(info.exe) <= EXE_MAX + 1


@pytest.mark.parametrize("tty", ["../etc/passwd", "/etc/passwd", "pts/../../etc/passwd"])
def test_a_tty_outside_dev_is_not_stat_ed(tty: str) -> None:
    assert ProcessTable().tty_idle_since(tty) is None


def test_a_tty_is_stat_ed() -> None:
    assert ProcessTable().tty_idle_since("null") is not None  # /dev/null: a node in /dev


def _open_audit(path: Path) -> AuditFile:
    """AuditFile(path) in a thread: a test that fails, not one that hangs, if open() blocks."""
    made: list[AuditFile] = []
    thread = threading.Thread(target=lambda: made.append(AuditFile(str(path))), daemon=True)
    thread.start()
    thread.join(5)
    assert made, f"opening the audit log {path} blocked"
    return made[0]


def test_audit_log_that_is_a_fifo_is_refused_without_waiting(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fifo = tmp_path / "audit.jsonl"
    os.mkfifo(fifo)
    with caplog.at_level(logging.WARNING, "logoutd"):
        audit = _open_audit(fifo)
    assert not audit.detailed
    assert "not a regular file" in caplog.text or "cannot open it" in caplog.text, caplog.text


def test_audit_log_that_is_a_symlink_is_refused(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    link = tmp_path / "audit.jsonl"
    link.symlink_to(target)
    with caplog.at_level(logging.WARNING, "logoutd"):
        audit = _open_audit(link)
    assert not audit.detailed and target.read_text() == ""
    audit.record("reload")
    assert target.read_text() == ""


def test_audit_log_regular_file_still_works(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = _open_audit(path)
    audit.record("reload", files=[])
    audit.close()
    assert '"event": "reload"' in path.read_text()


@needs_root
def test_posix_ipc_of_the_user_is_removed_by_a_child(tmp_path: Path) -> None:
    shm, mq = tmp_path / "shm", tmp_path / "mqueue"
    shm.mkdir()
    mq.mkdir()
    mine = [shm / "sem.a", shm / "b", mq / "q"]
    others = [shm / "root-owned", mq / "other"]
    for p in mine + others:
        p.write_text("x")
    for p in mine:
        os.chown(p, 4242, 4242)
    os.chown(others[1], 4343, 4343)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    (shm / "link").symlink_to(outside)
    os.chown(shm / "link", 4242, 4242, follow_symlinks=False)
    files = UserFiles(tmp_path / "user", tmp_path / "linger", ipc_dirs=(str(shm), str(mq)))
    assert files.remove_ipc(4242) >= 0  # SysV: none of this test's
    for child in files._removers:
        child.wait(30)
    assert not any(p.exists() for p in mine) and not (shm / "link").is_symlink()
    assert all(p.exists() for p in others) and (outside / "keep").exists()


def test_a_pinned_process_is_signalled_through_its_pidfd() -> None:
    """Session.kill's path: the signal goes to the pinned process; once it has exited (its pid
    free for reuse) the table refuses instead of signalling a bare pid."""
    table = ProcessTable()
    child = subprocess.Popen(["sleep", "60"])
    try:
        ref = table.pin(child.pid)
        table.signal(ref, signal.SIGTERM)
        assert child.wait(timeout=10) == -signal.SIGTERM  # reaped: the pid may now be reused
        with pytest.raises(ProcessGone):
            table.signal(ref, signal.SIGTERM)
        table.release(ref)
        with pytest.raises(ProcessGone):
            table.signal(ref, signal.SIGTERM)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_brief_agrees_with_describe_from_two_reads() -> None:
    argv = ("/usr/bin/python3", "-c", "import time; time.sleep(60)", "", "a b")
    child = subprocess.Popen(argv)
    try:
        for _ in range(500):  # until the child has exec'd
            with open(f"/proc/{child.pid}/cmdline", "rb") as f:
                if b"time.sleep" in f.read(200):
                    break
            time.sleep(0.01)
        table = ProcessTable()
        full, brief = table.describe(child.pid), table.brief(child.pid)
    finally:
        child.kill()
        child.wait()
    assert full is not None and brief is not None
    assert (brief.comm, brief.cmdline, brief.start_time, brief.ppid, brief.sid) == \
        (full.comm, full.cmdline, full.start_time, full.ppid, full.sid) == \
        ("python3", " ".join(a for a in argv if a), full.start_time, os.getpid(), full.sid)
    assert brief.argv == full.argv == argv
    assert ProcessTable().brief(child.pid) is None  # gone: None, not an error
