"""stop-unit: SIGTERM a unit's processes; SIGKILL follows after UserStopTimeoutSec=."""

from __future__ import annotations

from logoutd.cli.verb import Invocation, Verb


def run(inv: Invocation) -> int:
    results = [inv.call("stop_unit", name=name) for name in inv.words]
    if inv.output.json:
        inv.output.emit_json("units", [r["unit"] for r in results])
    return 0


VERB = Verb("stop-unit", run, "Stop one or more units", "NAME…", min_words=1, group="Unit")
