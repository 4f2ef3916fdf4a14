"""status: the daemon's version, pid, uptime, cgroup root, configuration files and counts."""

from __future__ import annotations

import time
from typing import Any

from logoutd.cli.output import format_since
from logoutd.cli.verb import Invocation, Verb


def run(inv: Invocation) -> int:
    status = inv.call("status")
    if inv.output.json:
        inv.output.emit_json("status", status)
        return 0
    uptime = float(status["uptime"])
    files = status["config_files"] or ["(none: built-in defaults)"]
    lines = [
        f"logoutd {status['version']}",
        f"\t     PID: {status['pid']}",
        f"\t   Since: {format_since(time.time() - uptime)}",
        f"\t  Socket: {inv.client.path}",
        f"\t  Cgroup: {status['cgroup_root']}",
        f"\tSessions: {status['sessions']}",
        f"\t   Users: {status['users']}",
        f"\t   D-Bus: {_dbus(status.get('dbus'))}",
        f"\t  Config: {files[0]}",
        *(f"\t          {name}" for name in files[1:]),
    ]
    for line in lines:
        inv.output.print(line)
    return 0


def _dbus(dbus: dict[str, Any] | None) -> str:
    if dbus is None:
        return "not served (started without --dbus)"
    state = "connected" if dbus["connected"] else "NOT CONNECTED, reconnecting"
    return f"{dbus['name']} on {dbus['address']} ({state})"


VERB = Verb("status", run, "Show the daemon's state", max_words=0, group="Daemon")
