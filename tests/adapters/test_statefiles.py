"""system/statefiles on a real filesystem: the append-only log survives a torn line, compacts
now and then, and write_atomic leaves no temp file behind when it fails."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from logoutd.errors import LogoutdError
from logoutd.system.statefiles import StateStore, write_atomic

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "run", tmp_path / "state")


def log_path(store: StateStore) -> Path:
    return store.runtime_dir / "leftovers.jsonl"


def test_append_then_load_in_order(store: StateStore) -> None:
    store.append_lines("leftovers", [{"n": 1}, {"n": 2}], keep=10)
    store.append_lines("leftovers", [{"n": 3}], keep=10)
    assert store.load_lines("leftovers", limit=10) == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert store.load_lines("leftovers", limit=2) == [{"n": 2}, {"n": 3}]
    assert log_path(store).stat().st_mode & 0o777 == 0o600


def test_a_line_torn_by_a_crash_loses_only_itself(store: StateStore, tmp_path: Path) -> None:
    store.append_lines("leftovers", [{"n": 1}], keep=10)
    with open(log_path(store), "a") as f:
        f.write('{"n": 2, "cmdl')  # the daemon died in the middle of this record
    # A new daemon (no counts cached) appends after the torn line.
    StateStore(store.runtime_dir, store.state_dir).append_lines("leftovers", [{"n": 3}], keep=10)
    store.append_lines("leftovers", [{"n": 4}], keep=10)
    assert store.load_lines("leftovers", limit=10) == [{"n": 1}, {"n": 3}, {"n": 4}]


def test_a_file_ending_in_a_newline_gets_no_blank_line(store: StateStore) -> None:
    for n in range(3):
        store.append_lines("leftovers", [{"n": n}], keep=10)
    assert log_path(store).read_text() == '{"n": 0}\n{"n": 1}\n{"n": 2}\n'


def test_compaction_keeps_the_newest_and_waits_for_twice_keep(store: StateStore) -> None:
    keep = 5
    for n in range(2 * keep):
        store.append_lines("leftovers", [{"n": n}], keep=keep)
    assert len(log_path(store).read_text().splitlines()) == 2 * keep  # not yet compacted
    store.append_lines("leftovers", [{"n": 2 * keep}], keep=keep)
    lines = log_path(store).read_text().splitlines()
    assert len(lines) == keep + 1  # the newest `keep` kept, then the new record appended
    assert [r["n"] for r in store.load_lines("leftovers", limit=100)] == list(range(5, 11))


def test_compaction_counts_lines_a_new_daemon_finds(store: StateStore) -> None:
    for n in range(8):
        store.append_lines("leftovers", [{"n": n}], keep=4)  # compacted at the 9th: not yet
    fresh = StateStore(store.runtime_dir, store.state_dir)
    fresh.append_lines("leftovers", [{"n": 8}], keep=4)
    assert [r["n"] for r in fresh.load_lines("leftovers", limit=100)] == [4, 5, 6, 7, 8]


def test_compaction_terminates_a_torn_line(store: StateStore) -> None:
    store.append_lines("leftovers", [{"n": 0}, {"n": 1}], keep=2)
    with open(log_path(store), "a") as f:
        f.write('{"n": 2')  # torn by a crash; the new daemon counts 3 lines
    fresh = StateStore(store.runtime_dir, store.state_dir)
    fresh.append_lines("leftovers", [{"n": 3}, {"n": 4}], keep=2)  # 3 + 2 > 4: compacts
    assert fresh.load_lines("leftovers", limit=100) == [{"n": 1}, {"n": 3}, {"n": 4}]
    assert log_path(store).read_text().endswith('{"n": 4}\n')


def test_write_atomic_replaces_whole_files(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_atomic(path, "one\n")
    write_atomic(path, "two\n", mode=0o644, durable=True)
    assert path.read_text() == "two\n"
    assert os.listdir(tmp_path) == ["f"]


def test_write_atomic_failure_keeps_the_old_and_removes_the_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "record"
    path.mkdir()  # the rename onto a non-empty directory fails after the temp file is written
    (path / "inside").write_text("old")
    with pytest.raises(LogoutdError, match=f"Cannot save state file {path}"):
        write_atomic(path, "new\n")
    assert sorted(os.listdir(tmp_path)) == ["record"]
    assert (path / "inside").read_text() == "old"


@pytest.fixture
def full_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mount)],
                   check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@needs_root
def test_write_atomic_on_a_full_filesystem_leaves_no_temp_file(full_fs: Path) -> None:
    path = full_fs / "record.json"
    write_atomic(path, "old\n")
    with pytest.raises(LogoutdError, match="No space left on device"):
        write_atomic(path, "x" * (1 << 20))
    assert sorted(os.listdir(full_fs)) == ["record.json"]
    assert path.read_text() == "old\n"
