"""Object paths as logind names them (sd-bus `bus_label_escape`), and back."""

from __future__ import annotations

import string

ROOT = "/org/freedesktop/login1"
SESSION_PREFIX = f"{ROOT}/session/"
USER_PREFIX = f"{ROOT}/user/"
_PLAIN = frozenset(string.ascii_letters + string.digits)


def escape(label: str) -> str:
    """Every byte outside [A-Za-z0-9], and a leading digit, becomes _xx; empty becomes _."""
    if not label:
        return "_"
    out = []
    for index, byte in enumerate(label.encode()):
        char = chr(byte)
        if char in _PLAIN and not (index == 0 and char.isdigit()):
            out.append(char)
        else:
            out.append(f"_{byte:02x}")
    return "".join(out)


def unescape(label: str) -> str | None:
    """The inverse of escape(); None for a label escape() cannot have produced."""
    if label == "_":
        return ""
    raw = bytearray()
    i = 0
    while i < len(label):
        char = label[i]
        if char == "_":
            digits = label[i + 1:i + 3]
            if len(digits) != 2 or any(c not in string.hexdigits for c in digits):
                return None
            raw.append(int(digits, 16))
            i += 3
        elif char in _PLAIN:
            raw.append(ord(char))
            i += 1
        else:
            return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


def session_path(session_id: str) -> str:
    return SESSION_PREFIX + escape(session_id)


def user_path(uid: int) -> str:
    return USER_PREFIX + escape(str(uid))
