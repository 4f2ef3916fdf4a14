"""run: keep a command past logout, in a scope (this process, then exec) or a service (spawned).

    logoutctl run --scope [--unit NAME] [--or-warn] -- CMD…
    logoutctl run [--unit NAME] [--setenv K=V]… [--working-directory D] [--wait] -- CMD…
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from logoutd.cli.verb import Invocation, Verb
from logoutd.config.values import format_timespan
from logoutd.errors import InvalidArgument, LogoutdError, NotRunning

WAIT_INTERVAL = 0.2
RESTART_GRACE = 30.0  # seconds --wait keeps trying to reach a daemon that went away
OR_WARN_TIMEOUT = 2.0  # seconds --or-warn waits to connect, and then for the answer


@dataclass
class RunOptions:
    scope: bool = False
    unit: str | None = None
    setenv: dict[str, str] = field(default_factory=dict)
    working_directory: str | None = None
    wait: bool = False
    or_warn: bool = False  # --scope only: if refused, warn once and run the command anyway
    command: list[str] = field(default_factory=list)


def parse(words: list[str]) -> RunOptions:
    """Options up to `--` or the first word that is not one; the rest is the command."""
    options = RunOptions()
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--":
            index += 1
            break
        if not word.startswith("-"):
            break
        name, eq, inline = word.partition("=")
        if name in ("--scope", "--wait", "--or-warn"):
            if eq:
                raise InvalidArgument(f"Option '{name}' takes no value.")
            setattr(options, name[2:].replace("-", "_"), True)
            index += 1
            continue
        if name not in ("--unit", "--setenv", "--working-directory", "-E"):
            raise InvalidArgument(f"Unknown option '{name}' for run.")
        if eq:
            value, index = inline, index + 1
        elif index + 1 < len(words):
            value, index = words[index + 1], index + 2
        else:
            raise InvalidArgument(f"Option '{name}' needs a value.")
        if name == "--unit":
            options.unit = value
        elif name == "--working-directory":
            options.working_directory = os.path.abspath(value)
        else:
            key, eq, val = value.partition("=")
            if not key or not eq:
                raise InvalidArgument(f"Invalid --setenv '{value}': expected NAME=VALUE.")
            options.setenv[key] = val
    options.command = words[index:]
    if not options.command:
        raise InvalidArgument("No command given (usage: run [OPTIONS] -- COMMAND…).")
    if options.scope and (options.setenv or options.working_directory or options.wait):
        raise InvalidArgument("--setenv, --working-directory and --wait need a service, "
                              "not --scope.")
    if options.or_warn and not options.scope:
        raise InvalidArgument("--or-warn goes with --scope.")
    return options


def lifetime(result: dict[str, Any]) -> str:
    """What happens to the unit: the sentence `run` prints when it starts."""
    if result["linger"]:
        return "it survives logout; lingering: it keeps running."
    if result.get("keeps_user"):  # KeepUserWhileUnits=yes
        limit = result.get("keep_user_max_sec")
        if limit is None:
            return "it survives logout and runs until it ends, also after your last session."
        return (f"it survives logout and runs until it ends, at most {format_timespan(limit)} "
                "after your last session.")
    delay = result["stop_delay_sec"]
    when = ("when your user is stopped" if delay is None
            else f"{format_timespan(delay)} after your last session")
    return f"it survives logout, and ends {when} unless you linger (logoutctl enable-linger)."


def _exec(argv: list[str]) -> NoReturn:
    os.execvp(argv[0], argv)


def run(inv: Invocation, exec_: Callable[[list[str]], NoReturn] | None = None) -> int:
    options = parse(inv.words)
    if options.scope:
        return _scope(inv, options, exec_ or _exec)
    params: dict[str, Any] = {"argv": options.command, "env": options.setenv}
    if options.unit is not None:
        params["name"] = options.unit
    if options.working_directory is not None:
        params["cwd"] = options.working_directory
    result = inv.call("start_unit", **params)
    unit = result["unit"]
    if inv.output.json:
        if not options.wait:  # with --wait, one document at the end, with the result
            inv.output.emit_json("unit", {**unit, "log": result["log"]})
    else:
        inv.output.print(f"Running as unit: {unit['name']}; output goes to {result['log']}")
        told = lifetime(result)
        inv.output.print(told[:1].upper() + told[1:])
    if not options.wait:
        return 0
    _wait_gone(inv, unit)
    return _finished(inv, unit, result["log"])


def _wait_gone(inv: Invocation, unit: dict[str, Any]) -> None:
    """Poll until the unit is gone. A daemon restart meanwhile only costs a reconnect; a daemon
    away for longer than RESTART_GRACE ends the wait with its error."""
    away_since: float | None = None
    while True:
        try:
            units = inv.call("list_units", uid=unit["uid"])["units"]
        except NotRunning:
            inv.client.close()
            now = time.monotonic()
            away_since = away_since if away_since is not None else now
            if now - away_since > RESTART_GRACE:
                raise
            time.sleep(WAIT_INTERVAL)
            continue
        away_since = None
        if not any(u["name"] == unit["name"] for u in units):
            return
        time.sleep(WAIT_INTERVAL)


def _finished(inv: Invocation, unit: dict[str, Any], log: str) -> int:
    """--wait: say how the service ended and exit as systemd-run --wait does (its status,
    128+N for a signal)."""
    try:
        result = inv.call("unit_result", name=unit["name"], uid=unit["uid"])["result"]
    except LogoutdError as e:  # the daemon restarted: the result was in its memory
        raise LogoutdError(f"{unit['name']} finished; its result is unknown: {e.message}") from None
    status: int | None = result["exit_status"]
    if inv.output.json:
        inv.output.emit_json("unit", {**unit, "log": log, "result": result})
    else:
        how = ("unknown (logoutd restarted meanwhile)" if status is None
               else f"killed by signal {-status}" if status < 0 else f"exit status {status}")
        inv.output.print(f"Finished with result: {result['result']}; main process: {how}")
    if status is None:
        return 1
    return 128 - status if status < 0 else status


def _scope(inv: Invocation, options: RunOptions, exec_: Callable[[list[str]], NoReturn]) -> int:
    params = {"name": options.unit} if options.unit is not None else {}
    err = inv.output.err or sys.stderr
    if options.or_warn:  # a user is waiting for tmux: a stuck daemon only costs a warning
        inv.client.timeout = min(inv.client.timeout, OR_WARN_TIMEOUT)
    try:
        result = inv.call("start_scope", **params)
    except LogoutdError as e:
        if not options.or_warn:
            raise
        # The shell integration's path: the program runs all the same, as part of the session.
        err.write(f"logoutd: {options.command[0]} will be terminated at logout: {e.message}\n")
        err.flush()
    else:
        if _isatty(err):
            err.write(f"Running as {result['unit']['name']}: {lifetime(result)}\n")
            err.flush()
    inv.client.close()
    try:
        exec_(options.command)
    except OSError as e:
        err.write(f"Cannot run '{options.command[0]}': {e.strerror}.\n")
        return 127


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


VERB = Verb("run", run, "Run a command past logout, in a scope or a service",
            "[--scope [--or-warn]] [--unit NAME] [--setenv K=V] [--working-directory D] [--wait] "
            "-- CMD…",
            min_words=1, group="Unit")
