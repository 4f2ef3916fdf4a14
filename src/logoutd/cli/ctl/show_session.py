"""show-session: sessions as `Name=value` properties (no ID: the daemon's Manager properties)."""

from __future__ import annotations

from logoutd.cli import properties
from logoutd.cli.verb import Invocation, Verb


def run(inv: Invocation) -> int:
    if not inv.words:
        return show_manager(inv)
    sessions = [inv.call("get_session", id=word)["session"] for word in inv.words]
    return properties.show(inv.output, [properties.session_properties(s) for s in sessions],
                           inv.options)


def show_manager(inv: Invocation) -> int:
    """What loginctl shows without an ID: the configuration, under logind's property names."""
    options = inv.call("show_config")["options"]
    n_sessions = inv.call("status")["sessions"]
    props = properties.manager_properties(options, n_sessions)
    return properties.show(inv.output, [props], inv.options)


VERB = Verb("show-session", run, "Show properties of sessions or the manager", "[ID…]")
