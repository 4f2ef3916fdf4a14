"""list-users: every user with sessions or linger (loginctl's table, with v256's STATE)."""

from __future__ import annotations

from logoutd.cli.verb import Invocation, Verb


def run(inv: Invocation) -> int:
    users = inv.call("list_users")["users"]
    users.sort(key=lambda u: u["uid"])
    if inv.output.json:
        inv.output.emit_json("users", users)
        return 0
    rows = [[str(u["uid"]), u["name"], "yes" if u["linger"] else "no", u["state"]] for u in users]
    inv.output.show_table(["UID", "USER", "LINGER", "STATE"], rows, (0,), "users")
    return 0


VERB = Verb("list-users", run, "List users", max_words=0, group="User")
