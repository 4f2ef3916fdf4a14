"""List sessions (closing ones too)."""

from __future__ import annotations

import argparse

from logoutd.api.client import Client
from logoutd.cli.output import Output, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(client: Client, args: argparse.Namespace, output: Output) -> int:
    sessions = client.call("list_sessions")["sessions"]
    if output.json:
        output.emit_json("sessions", sessions)
        return 0
    rows = [[s["id"], str(s["uid"]), s["user"], "", s["tty"]] for s in sessions]
    rows.sort(key=lambda r: r[0])  # loginctl sorts ids as strings: "10" before "9"
    lines = table(["SESSION", "UID", "USER", "SEAT", "TTY"], rows, right=(0, 1)).split("\n")
    for line in lines if output.legend else lines[1:]:
        output.print(line)
    if output.legend:
        output.print(f"\n{len(rows)} sessions listed." if rows else "No sessions.")
    return 0
