"""leftovers: processes still in a session's scope when it ended, and how each escapes a classic
logout (permissive mode's main output; in kill mode, with AuditLog= set, what was killed)."""

from __future__ import annotations

import time

from logoutd.cli import resolve
from logoutd.cli.verb import Invocation, Verb


def run(inv: Invocation) -> int:
    params: dict[str, object] = {}
    if inv.options.session:
        params["session"] = inv.options.session
    if inv.options.user:
        uid = resolve.user(inv.options.user)
        if uid is not None:
            params["uid"] = uid
    records = inv.call("leftovers", **params)["leftovers"]
    if inv.output.json:
        inv.output.emit_json("leftovers", records)
        return 0
    rows = [[r["session"], r["user"], str(r["pid"]), str(r["ppid"]), r["action"],
             time.strftime("%H:%M:%S", time.localtime(r["recorded_at"])), r["tty"] or "-",
             "; ".join(r["why"]) or "-", r["cmdline"] or f"[{r['comm']}]"]
            for r in records]
    inv.output.show_table(["SESSION", "USER", "PID", "PPID", "ACTION", "AT", "TTY", "WHY", "COMMAND"],
                          rows, (2, 3), "leftover processes")
    return 0


VERB = Verb("leftovers", run, "List processes left behind when sessions ended "
            "(--session ID, --user USER)", max_words=0, group="Process")
