"""list-sessions: every session, closing ones too (loginctl's table)."""

from __future__ import annotations

from logoutd.cli.verb import Invocation, Verb


def run(inv: Invocation) -> int:
    sessions = inv.call("list_sessions")["sessions"]
    sessions.sort(key=lambda s: s["id"])  # loginctl sorts ids as strings: "10" before "9"
    if inv.output.json:
        inv.output.emit_json("sessions", sessions)
        return 0
    rows = [[s["id"], str(s["uid"]), s["user"], "", s["tty"] or ""] for s in sessions]
    inv.output.show_table(["SESSION", "UID", "USER", "SEAT", "TTY"], rows, (0, 1), "sessions")
    return 0


VERB = Verb("list-sessions", run, "List sessions", max_words=0)
