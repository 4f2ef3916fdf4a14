"""list-sessions: every session, closing ones too (loginctl's table, with v254's STATE)."""

from __future__ import annotations

from logoutd.cli.verb import Invocation, Verb


def run(inv: Invocation) -> int:
    sessions = inv.call("list_sessions")["sessions"]
    sessions.sort(key=lambda s: s["id"])  # loginctl sorts ids as strings: "10" before "9"
    if inv.output.json:
        inv.output.emit_json("sessions", sessions)
        return 0
    # STATE keeps a `closing` session (its leftovers still running) from reading as a login.
    rows = [[s["id"], str(s["uid"]), s["user"], "", s["tty"] or "", s["state"]] for s in sessions]
    inv.output.show_table(["SESSION", "UID", "USER", "SEAT", "TTY", "STATE"], rows, (0, 1),
                          "sessions")
    return 0


VERB = Verb("list-sessions", run, "List sessions", max_words=0)
