"""list-units: every scope and service under user@UID.service, as a table or --json."""

from __future__ import annotations

from logoutd.cli.output import format_timestamp
from logoutd.cli.verb import Invocation, Verb


def run(inv: Invocation) -> int:
    units = inv.call("list_units")["units"]
    if inv.output.json:
        inv.output.emit_json("units", units)
        return 0
    rows = [[u["name"], str(u["uid"]), u["user"], u["state"], str(len(u["pids"])),
             format_timestamp(u["created"])] for u in units]
    inv.output.show_table(["UNIT", "UID", "USER", "STATE", "PIDS", "SINCE"], rows, (1, 4), "units")
    return 0


VERB = Verb("list-units", run, "List scopes and services kept past logout", max_words=0,
            group="Unit")
