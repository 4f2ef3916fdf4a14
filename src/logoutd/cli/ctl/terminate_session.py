"""terminate-session: end sessions and kill every process in them (SIGTERM, SIGHUP, SIGKILL)."""

from __future__ import annotations

from logoutd.cli.verb import Invocation, Verb


def run(inv: Invocation) -> int:
    sessions = [inv.call("terminate_session", id=word)["session"] for word in inv.words]
    if inv.output.json:
        inv.output.emit_json("sessions", sessions)
    return 0


VERB = Verb("terminate-session", run, "Terminate one or more sessions", "ID…", min_words=1)
