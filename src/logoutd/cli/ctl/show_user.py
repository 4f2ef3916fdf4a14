"""show-user: users as `Name=value` properties (no USER: the daemon's Manager properties)."""

from __future__ import annotations

from logoutd.cli import properties, resolve
from logoutd.cli.ctl.show_session import show_manager
from logoutd.cli.verb import Invocation, Verb


def run(inv: Invocation) -> int:
    if not inv.words:
        return show_manager(inv)
    uids = [resolve.user(word) for word in inv.words]
    users = [inv.call("get_user", uid=uid)["user"] for uid in uids]
    return properties.show(inv.output, [properties.user_properties(u) for u in users], inv.options)


VERB = Verb("show-user", run, "Show properties of users or the manager", "[USER…]", group="User")
