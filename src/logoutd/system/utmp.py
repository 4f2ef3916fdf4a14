"""Reading utmp (glibc's `struct utmp` on Linux): the USER_PROCESS entries' pid and line."""

from __future__ import annotations

import struct
from pathlib import Path

# ut_type (short, padded), ut_pid, ut_line[32], ut_id[4], ut_user[32], ut_host[256],
# ut_exit (2 shorts), ut_session, ut_tv (2 x int32), ut_addr_v6[4], 20 unused: 384 bytes.
RECORD = struct.Struct("=h2xi32s4s32s256s2hi2i4i20s")
USER_PROCESS = 7


def user_processes(path: Path) -> list[tuple[int, str]]:
    """(ut_pid, ut_line without /dev/) of each USER_PROCESS entry with a pid and a line; a
    missing file has none. Read without glibc's lock: a record torn by a writer is ignored."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    entries = []
    for offset in range(0, len(data) - RECORD.size + 1, RECORD.size):
        fields = RECORD.unpack_from(data, offset)
        ut_type, pid, line = fields[0], fields[1], fields[2]
        if ut_type != USER_PROCESS or pid <= 0:
            continue
        name = line.split(b"\0", 1)[0].decode("utf-8", "replace").removeprefix("/dev/")
        if name:
            entries.append((pid, name))
    return entries
