"""Stock systemd tools against the test's private bus: `loginctl` and `busctl`.

loginctl 252 refuses to run unless sd_booted() (/run/systemd/system/ exists), so it runs in a
private mount namespace with a tmpfs on /run/systemd holding system/ and seats/ (see
`bus.namespace_prefix`); the real /run/systemd is never touched.  `as_user` drops to a test user
with setpriv after the namespace is set up (setpriv is not setuid, so DBUS_SYSTEM_BUS_ADDRESS is
honoured).  busctl has no sd_booted() check and runs directly.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from .bus import PrivateBus, namespace_prefix
from .users import TestUser

LOGINCTL = "/usr/bin/loginctl"
BUSCTL = "busctl"
LOGIN1 = "org.freedesktop.login1"
MANAGER_PATH = "/org/freedesktop/login1"
MANAGER = "org.freedesktop.login1.Manager"


def _setpriv(as_user: TestUser | None) -> list[str]:
    if as_user is None:
        return []
    return ["setpriv", f"--reuid={as_user.uid}", f"--regid={as_user.gid}", "--init-groups"]


def _env(bus: PrivateBus, as_user: TestUser | None) -> dict[str, str]:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "SYSTEMD_PAGER": "cat",
        "SYSTEMD_COLORS": "0",
        "SYSTEMD_LOG_COLOR": "0",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "HOME": str(as_user.home) if as_user is not None else "/root",
        **bus.env(),
    }
    if as_user is not None:
        env["USER"] = env["LOGNAME"] = as_user.name
    return env


def loginctl(bus: PrivateBus, *args: str, as_user: TestUser | None = None,
             timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`loginctl --no-pager ARGS` (stock, systemd 252) against `bus`, as root or `as_user`."""
    inner = (f'{namespace_prefix(bus, booted=True)} && '
             f'exec {" ".join(_setpriv(as_user))} {LOGINCTL} --no-pager "$@"')
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner, "sh", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
        env=_env(bus, as_user), cwd="/",
    )


def busctl(bus: PrivateBus, *args: str, as_user: TestUser | None = None,
           timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`busctl --address=<bus> ARGS`, as root or `as_user`."""
    return subprocess.run(
        [*_setpriv(as_user), BUSCTL, f"--address={bus.address}", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
        env=_env(bus, as_user), cwd="/",
    )


def call(bus: PrivateBus, method: str, signature: str = "", *args: str,
         path: str = MANAGER_PATH, interface: str = MANAGER,
         as_user: TestUser | None = None) -> subprocess.CompletedProcess[str]:
    """`busctl call org.freedesktop.login1 PATH INTERFACE METHOD [SIGNATURE ARGS...]`, JSON
    output (`json_data(result)` parses it)."""
    sig = [signature, *args] if signature else []
    return busctl(bus, "--json=short", "call", LOGIN1, path, interface, method, *sig,
                  as_user=as_user)


def json_data(result: subprocess.CompletedProcess[str]) -> Any:
    """The `data` of busctl's --json=short output; the call must have succeeded."""
    assert result.returncode == 0, f"busctl failed: {result}"
    return json.loads(result.stdout)["data"]


def bus_label(text: str) -> str:
    """systemd's bus_label_escape: bytes outside [A-Za-z0-9] and a leading digit -> _xx."""
    if not text:
        return "_"
    out = []
    for i, byte in enumerate(text.encode()):
        c = chr(byte)
        if c in _LETTERS or (c in _DIGITS and i > 0):
            out.append(c)
        else:
            out.append(f"_{byte:02x}")
    return "".join(out)


_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS = frozenset("0123456789")


def session_path(session_id: str) -> str:
    return f"{MANAGER_PATH}/session/{bus_label(session_id)}"


def user_path(uid: int) -> str:
    return f"{MANAGER_PATH}/user/{bus_label(str(uid))}"


def properties(output: str) -> dict[str, str]:
    """`loginctl show-*` output (KEY=VALUE lines) as a dict."""
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
