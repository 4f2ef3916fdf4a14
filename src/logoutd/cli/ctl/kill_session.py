"""kill-session: send a signal to the leader or to every process of sessions; they go on."""

from __future__ import annotations

from logoutd.cli import resolve
from logoutd.cli.verb import Invocation, Verb


def run(inv: Invocation) -> int:
    signo = resolve.signal_number(inv.options.signal)
    who = inv.options.kill_whom
    kills = []
    for word in inv.words:
        # Resolve "self" first so the result names the session that was signalled.
        session = inv.call("get_session", id=word)["session"]
        signalled = inv.call("kill_session", id=session["id"], who=who, signal=signo)["signalled"]
        kills.append({"session": session["id"], "who": who, "signal": signo, "signalled": signalled})
    if inv.output.json:
        inv.output.emit_json("kills", kills)
    return 0


VERB = Verb("kill-session", run, "Send signal to processes of a session", "ID…", min_words=1)
