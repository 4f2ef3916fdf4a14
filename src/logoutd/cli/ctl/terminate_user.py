"""terminate-user: end every session of users and stop what is left of them."""

from __future__ import annotations

from logoutd.cli import resolve
from logoutd.cli.verb import Invocation, Verb


def run(inv: Invocation) -> int:
    uids = [resolve.user(word) for word in inv.words]
    users = [inv.call("terminate_user", uid=uid)["user"] for uid in uids]
    if inv.output.json:
        inv.output.emit_json("users", users)
    return 0


VERB = Verb("terminate-user", run, "Terminate all sessions of one or more users", "USER…",
            min_words=1, group="User")
