"""List users with sessions or linger."""

from __future__ import annotations

import argparse

from logoutd.api.client import Client
from logoutd.cli.output import Output, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(client: Client, args: argparse.Namespace, output: Output) -> int:
    users = client.call("list_users")["users"]
    if output.json:
        output.emit_json("users", users)
        return 0
    rows = [[str(u["uid"]), u["name"], "yes" if u["linger"] else "no", u["state"]] for u in users]
    lines = table(["UID", "USER", "LINGER", "STATE"], rows, right=(0,)).split("\n")
    for line in lines if output.legend else lines[1:]:
        output.print(line)
    if output.legend:
        output.print(f"\n{len(rows)} users listed." if rows else "No users.")
    return 0
