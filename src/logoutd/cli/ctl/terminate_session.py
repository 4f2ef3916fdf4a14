"""Terminate sessions: every process of each is killed (SIGTERM, SIGHUP, then SIGKILL)."""

from __future__ import annotations

import argparse

from logoutd.api.client import Client
from logoutd.cli.output import Output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ids", nargs="+", metavar="ID")


def run(client: Client, args: argparse.Namespace, output: Output) -> int:
    results = [client.call("terminate_session", id=i)["session"] for i in args.ids]
    if output.json:
        output.emit_json("sessions", results)
    return 0
