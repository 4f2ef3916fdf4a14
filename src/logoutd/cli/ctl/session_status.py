"""Show a session's state and its process tree (no ID: the caller's own session)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from logoutd.api.client import Client
from logoutd.cli.output import Output, cgroup_tree, format_since


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ids", nargs="*", metavar="ID")


def run(client: Client, args: argparse.Namespace, output: Output) -> int:
    ids = args.ids or ["auto"]
    sessions = [client.call("get_session", id=i)["session"] for i in ids]
    if output.json:
        output.emit_json("sessions", sessions)
        return 0
    root = Path(client.call("status")["cgroup_root"])
    for index, session in enumerate(sessions):
        if index:
            output.print()
        for line in render(session, root):
            output.print(line)
    return 0


def render(s: dict[str, Any], cgroup_root: Path) -> list[str]:
    def row(label: str, value: str) -> str:
        return f"{label:>16}: {value}"

    lines = [f"{s['id']} - {s['user']} ({s['uid']})", row("Since", format_since(s["timestamp"]))]
    if s["leader"]:
        comm = _comm(s["leader"])
        lines.append(row("Leader", f"{s['leader']} ({comm})" if comm else str(s["leader"])))
    if s["tty"]:
        lines.append(row("TTY", s["tty"]))
    if s["remote_host"]:
        remote = f"{s['remote_user']}@{s['remote_host']}" if s["remote_user"] else s["remote_host"]
        lines.append(row("Remote", remote))
    lines.append(row("Service", f"{s['service'] or '-'}; type {s['type']}; class {s['class']}"))
    lines.append(row("State", s["state"]))
    if s["stop_cause"]:
        lines.append(row("Stopped by", f"{s['stop_cause']}: {s['kill_reason']}"))
    lines.append(row("Unit", Path(s["scope"]).name))
    lines.extend(" " * 18 + t for t in cgroup_tree(cgroup_root / s["scope"]))
    return lines


def _comm(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""
