"""logoutctl: loginctl's verbs against logoutd. `main(argv, env)` is callable in-process."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import TextIO

from logoutd.api.client import Client, default_socket
from logoutd.cli.ctl import (
    list_sessions,
    list_users,
    session_status,
    status,
    terminate_session,
)
from logoutd.cli.output import Output
from logoutd.errors import LogoutdError

VERBS = {
    "list-sessions": list_sessions,
    "session-status": session_status,
    "list-users": list_users,
    "terminate-session": terminate_session,
    "status": status,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logoutctl", description="Control logoutd.")
    parser.add_argument("--socket", help="API socket (default $LOGOUTD_SOCKET or /run/logoutd/api.sock)")
    parser.add_argument("--json", action="store_true", help="print JSON (versioned schema)")
    parser.add_argument("--no-legend", action="store_true", help="no header or footer")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, module in VERBS.items():
        module.add_arguments(sub.add_parser(name, help=module.__doc__))
    return parser


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None,
         out: TextIO | None = None, err: TextIO | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    env = os.environ if env is None else env
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    args = build_parser().parse_args(argv)
    verb = args.verb or "list-sessions"
    if args.verb is None:
        args = build_parser().parse_args([*argv, verb])
    socket = args.socket or default_socket(env)
    output = Output(out, json=args.json, legend=not args.no_legend)
    try:
        with Client(socket) as client:
            status: int = VERBS[verb].run(client, args, output)
            return status
    except LogoutdError as e:
        err.write(f"{e.message}\n")
        return e.exit_status
