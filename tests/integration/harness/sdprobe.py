"""Ask sd-login (libsystemd's or libelogind's, through ctypes) about the calling process.

Run by /usr/bin/python3 inside a login, stdlib only: `sdprobe.py LIBRARY UID [SESSION]` prints
one JSON object: each call's name -> [return value, answer] (the errno name when it failed).
The answers are not freed: the process exits right after.
"""

from __future__ import annotations

import ctypes
import errno
import json
import sys


def main() -> None:
    lib = ctypes.CDLL(sys.argv[1])
    uid = int(sys.argv[2])
    out: dict[str, list[object]] = {}

    def err(r: int) -> str:
        return f"-{errno.errorcode.get(-r, str(-r))}"

    def string(name: str, *args: object) -> str | None:
        value = ctypes.c_char_p()
        fn = getattr(lib, name)
        r = fn(*args, ctypes.byref(value))
        if r < 0:
            out[name] = [r, err(r)]
            return None
        text = value.value.decode() if value.value is not None else None
        out[name] = [r, text]
        return text

    def number(name: str, *args: object) -> None:
        value = ctypes.c_uint32()
        r = getattr(lib, name)(*args, ctypes.byref(value))
        out[name] = [r, err(r) if r < 0 else value.value]

    def strv(name: str) -> None:
        array = ctypes.POINTER(ctypes.c_char_p)()
        r = getattr(lib, name)(ctypes.byref(array))
        if r < 0:
            out[name] = [r, err(r)]
            return
        items = [array[i].decode() for i in range(r)] if array else []
        out[name] = [r, sorted(items)]

    def uids() -> None:
        array = ctypes.POINTER(ctypes.c_uint32)()
        r = lib.sd_get_uids(ctypes.byref(array))
        out["sd_get_uids"] = [r, err(r) if r < 0 else sorted(array[i] for i in range(r))]

    session = string("sd_pid_get_session", 0)
    number("sd_pid_get_owner_uid", 0)
    string("sd_pid_get_unit", 0)
    # The session calls also for a library that cannot find the session from the cgroup path.
    sid = (sys.argv[3] if len(sys.argv) > 3 else session or "-").encode()
    string("sd_session_get_state", sid)
    r = lib.sd_session_is_active(sid)
    out["sd_session_is_active"] = [r, err(r) if r < 0 else bool(r)]
    number("sd_session_get_uid", sid)
    string("sd_session_get_type", sid)
    string("sd_session_get_class", sid)
    string("sd_session_get_service", sid)
    string("sd_uid_get_state", ctypes.c_uint32(uid))
    strv("sd_get_sessions")
    uids()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
