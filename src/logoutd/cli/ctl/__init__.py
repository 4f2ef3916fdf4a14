"""logoutctl: loginctl's verbs and options against logoutd. `main(argv, env, out, err)` runs in-process.

As with loginctl, options may come before or after the verb and apply where they make sense;
without a verb, `list-sessions` runs. Errors are one line on stderr; the exit status says which
error it was (docs/logoutctl.md, "Exit status").
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Mapping
from typing import NoReturn, TextIO

from logoutd import __version__
from logoutd.api.client import Client, choose_socket
from logoutd.cli import properties, resolve
from logoutd.cli.ctl import (
    check_config,
    kill_history,
    kill_session,
    kill_user,
    leftovers,
    linger,
    list_sessions,
    list_units,
    list_users,
    reload,
    run,
    session_status,
    show_config,
    show_session,
    show_user,
    status,
    stop_unit,
    terminate_session,
    terminate_user,
    user_status,
)
from logoutd.cli.output import (
    HIGHLIGHT_RED,
    NORMAL,
    Output,
    shown,
    terminal_width,
    wants_colour,
)
from logoutd.cli.verb import Invocation, Verb
from logoutd.errors import InvalidArgument, LogoutdError

VERBS: dict[str, Verb] = {v.name: v for v in (
    list_sessions.VERB, session_status.VERB, show_session.VERB, terminate_session.VERB,
    kill_session.VERB,
    list_users.VERB, user_status.VERB, show_user.VERB, terminate_user.VERB, kill_user.VERB,
    linger.ENABLE, linger.DISABLE,
    run.VERB, list_units.VERB, stop_unit.VERB, leftovers.VERB,
    kill_history.VERB, kill_history.SWITCH, kill_history.WHY,
    show_config.VERB, reload.VERB, check_config.VERB, status.VERB,
)}  # fmt: skip
DEFAULT_VERB = "list-sessions"

OPTIONS_HELP = """\
Options:
  -h --help              Show this help
     --version           Show package version
     --socket PATH       logoutd's API socket (default $LOGOUTD_SOCKET or /run/logoutd/api.sock;
                         root uses root.sock in the same directory when it exists)
     --json              Print JSON ({"schema": 1, ...}; see docs/logoutctl.md)
     --no-legend         Do not show the headers and footers
     --no-pager          Accepted for loginctl compatibility (logoutctl never pages)
  -a --all               Show all properties, including empty ones; empty cgroups in trees
  -p --property=NAME     Show only properties by this name (repeatable, or NAME,NAME)
  -P NAME                Equivalent to --value --property=NAME
     --value             When showing properties, only print the value
  -l --full              Do not ellipsize process tree lines
     --kill-whom=WHOM    Whom to send the signal to: leader or all (default)
  -s --signal=SIGNAL     Which signal to send: a name (SIGTERM, TERM) or a number (15);
                         "help" lists them
     --session=ID        leftovers: only this session's
     --user=USER         leftovers: only this user's (name or uid)
     --notice            kill-history: the login notice (only what it has not shown; once)
"""


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message[:1].upper() + message[1:] + ".")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="logoutctl", add_help=False, allow_abbrev=False)
    parser.add_argument("-h", "--help", action="store_true")
    parser.add_argument("--version", action="store_true")
    parser.add_argument("--socket")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-legend", action="store_true")
    parser.add_argument("--no-pager", action="store_true")
    parser.add_argument("-a", "--all", action="store_true")
    parser.add_argument("-p", "--property", action="append")
    parser.add_argument("-P", action="append")
    parser.add_argument("--value", action="store_true")
    parser.add_argument("-l", "--full", action="store_true")
    parser.add_argument("--kill-whom", choices=("leader", "all"), default="all")
    parser.add_argument("-s", "--signal", default="SIGTERM")
    parser.add_argument("--session")
    parser.add_argument("--user")
    parser.add_argument("--notice", action="store_true")
    parser.add_argument("words", nargs="*")
    return parser


def help_text() -> str:
    lines = ["logoutctl [OPTIONS...] COMMAND ...", "",
             "Send control commands to logoutd, the login session cleanup daemon.", ""]
    groups: dict[str, list[Verb]] = {}
    for verb in VERBS.values():
        groups.setdefault(verb.group, []).append(verb)
    for group, verbs in groups.items():
        lines.append(f"{group} Commands:")
        for verb in verbs:
            lines.append(f"  {verb.name + ' ' + verb.usage:<31} {verb.summary}")
        lines.append("")
    return "\n".join(lines) + "\n" + OPTIONS_HELP


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None,
         out: TextIO | None = None, err: TextIO | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    env = os.environ if env is None else env
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        argv, command = _split_command(argv)
        try:
            options = build_parser().parse_intermixed_args(argv)
        except UsageError as e:
            raise InvalidArgument(str(e)) from None
        options.words += command
        if options.help or options.words[:1] == ["help"]:
            out.write(help_text())
            return 0
        if options.version:
            out.write(f"logoutctl {__version__}\n")
            return 0
        if options.signal == "help":
            out.write("\n".join(resolve.signal_names()) + "\n")
            return 0
        verb, words = _verb(options.words)
        properties.check_names(properties.wanted(options))
        output = Output(out, json=options.json, legend=not options.no_legend,
                        colour=wants_colour(out, env),
                        width=None if options.full else terminal_width(out, env), err=err)
        with Client(choose_socket(options.socket, env)) as client:
            return verb.run(Invocation(client, words, options, output, env))
    except LogoutdError as e:
        message = shown(e.message)
        if wants_colour(err, env):
            message = f"{HIGHLIGHT_RED}{message}{NORMAL}"
        err.write(message + "\n")
        return e.exit_status
    except BrokenPipeError:
        return 0


_TAKES_VALUE = ("--socket", "-p", "--property", "-P", "-s", "--signal", "--kill-whom", "--session",
                "--user")
COMMAND_VERBS = ("run",)  # everything after the verb is the command, options included


def _split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """`logoutctl [OPTIONS] run CMD -x …`: CMD's words are not logoutctl's options."""
    for index, word in enumerate(argv):
        if word in COMMAND_VERBS and (index == 0 or argv[index - 1] not in _TAKES_VALUE):
            return argv[: index + 1], argv[index + 1 :]
        if not word.startswith("-") and (index == 0 or argv[index - 1] not in _TAKES_VALUE):
            break  # another verb came first
    return argv, []


def _verb(words: list[str]) -> tuple[Verb, list[str]]:
    name, args = (words[0], words[1:]) if words else (DEFAULT_VERB, [])
    verb = VERBS.get(name)
    if verb is None:
        close = difflib.get_close_matches(name, VERBS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise InvalidArgument(f"Unknown command verb '{name}'{hint}; 'logoutctl --help' lists them.")
    if len(args) < verb.min_words:
        raise InvalidArgument(f"Too few arguments for '{name}' (usage: {name} {verb.usage}).")
    if verb.max_words is not None and len(args) > verb.max_words:
        raise InvalidArgument(f"Too many arguments for '{name}'.")
    return verb, args
