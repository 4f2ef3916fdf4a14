"""show-config: the daemon's effective options, each with the file:line it came from."""

from __future__ import annotations

from typing import Any

from logoutd.cli.verb import Invocation, Verb
from logoutd.errors import InvalidArgument

DEFAULT = "(default)"


def run(inv: Invocation) -> int:
    answer = inv.call("show_config")
    options = select(answer["options"], inv.words)
    if inv.output.json:
        inv.output.emit_json("config", {"files": answer["files"], "options": options})
        return 0
    if inv.options.value:
        for option in options:
            inv.output.print(option["value"])
        return 0
    rows = [[f"{o['section']}.{o['key']}", o["value"], source(o)] for o in options]
    inv.output.table(["OPTION", "VALUE", "SOURCE"], rows)
    if inv.output.legend:
        files = answer["files"] or ["(none: built-in defaults)"]
        inv.output.print()
        inv.output.print(f"Files: {files[0]}")
        for name in files[1:]:
            inv.output.print(f"       {name}")
    return 0


def source(option: dict[str, Any]) -> str:
    where = option["source"]
    return f"{where['file']}:{where['line']}" if where else DEFAULT


def select(options: list[dict[str, Any]], words: list[str]) -> list[dict[str, Any]]:
    """OPTION words, as `Key` or `Section.Key`, any case; none: every option."""
    if not words:
        return options
    chosen = []
    for word in words:
        match = [o for o in options
                 if word.lower() in (o["key"].lower(), f"{o['section']}.{o['key']}".lower())]
        if not match:
            raise InvalidArgument(f"Unknown option '{word}'.")
        chosen += [o for o in match if o not in chosen]
    return chosen


VERB = Verb("show-config", run, "Show the effective configuration and where each value is set",
            "[OPTION…]", group="Daemon")
