"""Private state files, written atomically (temp file, rename; fsync where it must outlive a reboot).

Live state (sessions, users, units, under the runtime dir, /run/logoutd) only has to survive
the daemon's own crash or restart: the rename makes each file all-or-nothing for the next
reader, and after a machine crash or reboot every session is gone anyway, like /run itself.
So it is not fsynced: on a /run that is not tmpfs an fsync costs 0.2-0.5 ms per save, several
per login. What must outlive a reboot (the session id counter in the state dir) is fsynced.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from logoutd.core.hookrecords import HOOK_KIND
from logoutd.core.ports import StoredRecord
from logoutd.crashpoints import crashpoint
from logoutd.errors import LogoutdError

log = logging.getLogger("logoutd")
HEADER = "# This is private data. Do not parse; use the API (logoutctl).\n"


def write_atomic(path: Path, text: str, mode: int = 0o600, *, durable: bool = False) -> None:
    """All or nothing: a failure (e.g. a full filesystem) leaves the old file and no temp file,
    and raises a LogoutdError naming the path. `durable`: also on disk before the rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            data = memoryview(text.encode())
            while data:  # os.write may write less than asked
                data = data[os.write(fd, data):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise LogoutdError(f"Cannot save state file {path}: {e.strerror or e}.") from e


class StateStore:
    """runtime_dir/<kind>/<key>.json for live objects; state_dir/session-counter for ids."""

    def __init__(self, runtime_dir: Path, state_dir: Path) -> None:
        self.runtime_dir = runtime_dir
        self.state_dir = state_dir
        for kind in ("sessions", "users", "units", "kills", HOOK_KIND):
            (runtime_dir / kind).mkdir(parents=True, exist_ok=True, mode=0o700)
        # Users test for their own notice/UID.json by name; nobody lists who has one.
        (runtime_dir / "notice").mkdir(exist_ok=True, mode=0o711)
        (runtime_dir / "notice").chmod(0o711)
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        self._line_counts: dict[str, int] = {}

    def _path(self, kind: str, key: str) -> Path:
        if "/" in key or key.startswith("."):
            raise ValueError(f"bad state key {key!r}")
        return self.runtime_dir / kind / f"{key}.json"

    def save(self, kind: str, key: str, record: dict[str, Any]) -> None:
        write_atomic(self._path(kind, key), HEADER + json.dumps(record, sort_keys=True) + "\n")

    def remove(self, kind: str, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(kind, key).unlink()

    def load_all(self, kind: str) -> list[dict[str, Any]]:
        records = []
        for stored in self.load_records(kind):
            if stored.record is None:
                log.warning("%s: unreadable state file, ignoring it: %s", stored.where, stored.error)
                continue
            records.append(stored.record)
        return records

    def load_records(self, kind: str) -> list[StoredRecord]:
        records = []
        # Temp files (".name.json.tmp") are half-written: only whole, renamed records count.
        for path in sorted((self.runtime_dir / kind).glob("[!.]*.json")):
            try:
                text = path.read_text()
                body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
                record = json.loads(body)
                if not isinstance(record, dict):
                    raise ValueError("not an object")
            except (OSError, ValueError, RecursionError) as e:
                records.append(StoredRecord(path.stem, str(path), None, str(e) or type(e).__name__))
                continue
            records.append(StoredRecord(path.stem, str(path), record))
        return records

    def append_lines(self, kind: str, records: list[dict[str, Any]], keep: int) -> None:
        path = self.runtime_dir / f"{kind}.jsonl"
        count = self._line_counts.get(kind)
        if count is None:
            count = len(self._read_lines(path))
        if count + len(records) > 2 * keep:  # compact now and then, not at every append
            kept = self._read_lines(path)[-keep:]
            write_atomic(path, "".join(line + "\n" for line in kept))
            count = len(kept)
        data = "".join(json.dumps(record, sort_keys=True) + "\n" for record in records).encode()
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                size = os.fstat(fd).st_size
                # A line torn by a crash (or a failed append) has no newline: end it, so only it
                # is lost and not also the first record written after it.
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data
                view = memoryview(data)
                while view:  # os.write may write less than asked
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        except OSError as e:
            self._line_counts.pop(kind, None)  # part may be written: count again next time
            raise LogoutdError(f"Cannot append to state file {path}: {e.strerror or e}.") from e
        self._line_counts[kind] = count + len(records)

    def load_lines(self, kind: str, limit: int) -> list[dict[str, Any]]:
        records = []
        for line in self._read_lines(self.runtime_dir / f"{kind}.jsonl")[-limit:]:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line after a crash
            if isinstance(record, dict):
                records.append(record)
        return records

    @staticmethod
    def _read_lines(path: Path) -> list[str]:
        try:
            return path.read_text().splitlines()
        except FileNotFoundError:
            return []

    def reserve_counter(self, block: int) -> tuple[int, int]:
        path = self.state_dir / "session-counter"
        try:
            first = int(path.read_text().strip() or "1")
        except FileNotFoundError:
            first = 1
        except ValueError:
            log.warning("%s: unreadable session counter, starting from 1.", path)
            first = 1
        write_atomic(path, f"{first + block}\n", mode=0o644, durable=True)
        crashpoint("counter.reserved")
        return first, first + block
