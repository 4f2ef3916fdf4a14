"""user-status: a user's state, sessions, linger and process tree (no USER: the caller)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from logoutd.cli import cgls, resolve
from logoutd.cli.ctl.session_status import print_status
from logoutd.cli.output import Output, format_since, shown
from logoutd.cli.verb import Invocation, Verb


def run(inv: Invocation) -> int:
    uids = [resolve.user(word) for word in inv.words] or [None]
    users = [inv.call("get_user", uid=uid)["user"] for uid in uids]
    return print_status(inv, "users", users, "slice", render)


def render(output: Output, u: dict[str, Any], root: Path, show_all: bool = False) -> list[str]:
    """print_user_status_info() of loginctl, line for line (tabs included)."""
    lines = [f"{shown(u['name'])} ({u['uid']})"]
    if u["timestamp"]:
        lines.append(f"\t   Since: {format_since(u['timestamp'])}")
    lines.append(f"\t   State: {u['state']}")
    if u["sessions"]:
        lines.append("\tSessions: " + shown(" ".join(u["sessions"])))
    lines.append(f"\t  Linger: {'yes' if u['linger'] else 'no'}")
    lines.append(f"\t    Unit: {Path(u['slice']).name}")
    lines += cgls.tree(output, root, u["slice"], show_all=show_all)
    return lines


VERB = Verb("user-status", run, "Show user status", "[USER…]", group="User")
