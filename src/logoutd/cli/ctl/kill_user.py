"""kill-user: send a signal to every process of users (all their sessions and units)."""

from __future__ import annotations

from logoutd.cli import resolve
from logoutd.cli.verb import Invocation, Verb


def run(inv: Invocation) -> int:
    signo = resolve.signal_number(inv.options.signal)
    kills = []
    for uid in [resolve.user(word) for word in inv.words]:
        user = inv.call("get_user", uid=uid)["user"]
        signalled = inv.call("kill_user", uid=user["uid"], signal=signo)["signalled"]
        kills.append({"uid": user["uid"], "user": user["name"], "signal": signo,
                      "signalled": signalled})
    if inv.output.json:
        inv.output.emit_json("kills", kills)
    return 0


VERB = Verb("kill-user", run, "Send signal to processes of a user", "USER…", min_words=1,
            group="User")
