"""Read journald's native protocol as logoutd writes it (unit and integration tests)."""

from __future__ import annotations

import struct


def parse_journal(data: bytes) -> dict[str, str]:
    """One native-protocol datagram: FIELD=value lines, or FIELD\\n<le64 size><value>\\n."""
    fields: dict[str, str] = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            name, value = line.split(b"=", 1)
            i = nl + 1
        else:
            name = line
            (size,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            value = data[nl + 9:nl + 9 + size]
            assert data[nl + 9 + size:nl + 10 + size] == b"\n"
            i = nl + 10 + size
        fields[name.decode()] = value.decode()
    return fields
