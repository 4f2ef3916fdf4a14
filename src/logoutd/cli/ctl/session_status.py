"""session-status: a session's state and its process tree (no ID: the caller's own session)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from logoutd.cli import cgls
from logoutd.cli.output import Output, format_since, shown
from logoutd.cli.verb import Invocation, Verb


def run(inv: Invocation) -> int:
    sessions = [inv.call("get_session", id=word)["session"] for word in inv.words or ["auto"]]
    return print_status(inv, "sessions", sessions, "scope", render)


def print_status(inv: Invocation, kind: str, objects: list[dict[str, Any]], cgroup_key: str,
                 render: Callable[[Output, dict[str, Any], Path, bool], list[str]]) -> int:
    """session-status and user-status: each object rendered, a blank line between; with --json
    one document, each object with the processes of its cgroup (`cgroup_key`) added."""
    root = inv.cgroup_root()
    if inv.output.json:
        for o in objects:
            o["processes"] = [p.to_json() for p in cgls.processes(root, o[cgroup_key])]
        inv.output.emit_json(kind, objects)
        return 0
    for index, o in enumerate(objects):
        if index:
            inv.output.print()
        for line in render(inv.output, o, root, inv.options.all):
            inv.output.print(line)
    return 0


def render(output: Output, s: dict[str, Any], root: Path, show_all: bool = False) -> list[str]:
    """print_session_status_info() of loginctl, line for line (tabs included)."""
    s = {k: shown(v) if isinstance(v, str) else v for k, v in s.items()}
    lines = [f"{s['id']} - {s['user']} ({s['uid']})"]
    if s["timestamp"]:
        lines.append(f"\t   Since: {format_since(s['timestamp'])}")
    if s["leader"]:
        comm = shown(cgls.comm(s["leader"]))
        lines.append(f"\t  Leader: {s['leader']}" + (f" ({comm})" if comm else ""))
    if s["tty"]:
        lines.append(f"\t     TTY: {s['tty']}")
    host, user = s["remote_host"], s["remote_user"]
    if host and user:
        lines.append(f"\t  Remote: {user}@{host}")
    elif host:
        lines.append(f"\t  Remote: {host}")
    elif user:
        lines.append(f"\t  Remote: user {user}")
    if s["service"]:
        lines.append(f"\t Service: {s['service']}; type {s['type']}; class {s['class']}")
    else:
        lines.append(f"\t    Type: {s['type']}; class {s['class']}")
    lines.append(f"\t   State: {s['state']}")
    if s["stop_cause"]:
        # logoutd's addition: why the session is closing and what happens to its processes.
        lines.append(f"\t Stopped: {s['stop_cause']}; {s['stop_action']}: {s['kill_reason']}")
    lines.append(f"\t    Unit: {Path(s['scope']).name}")
    extra = (s["leader"],) if s["leader"] else ()
    lines += cgls.tree(output, root, s["scope"], show_all=show_all, extra=extra)
    return lines


VERB = Verb("session-status", run, "Show session status", "[ID…]")
