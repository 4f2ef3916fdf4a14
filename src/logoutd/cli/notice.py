"""The login notice: what logoutd ended at the user's last logouts, and how to keep such a
program next time, worded for the policy that applies to this user. Rendered by the client
from `kill_history(notice=true)`; the switch is a file of the user's, read here, never by
the daemon."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from logoutd.cli.output import shown
from logoutd.core.killrecords import format_duration

SHOWN = 3  # process lines in the notice; `logoutctl kill-history` lists the rest
DOC = "logoutctl why-killed"  # prints docs/why-killed.md, shipped in the package
SHELLS = frozenset({"bash", "sh", "dash", "zsh", "ksh", "mksh", "fish", "tcsh", "csh", "sshd",
                    "sshd-session", "login", "su", "sudo"})


def switch_file(env: Mapping[str, str]) -> Path | None:
    """$XDG_CONFIG_HOME/logoutd/no-login-notice (default ~/.config): present means off."""
    base = env.get("XDG_CONFIG_HOME") or (f"{env['HOME']}/.config" if env.get("HOME") else "")
    return Path(base) / "logoutd" / "no-login-notice" if base.startswith("/") else None


def is_off(env: Mapping[str, str]) -> bool:
    path = switch_file(env)
    try:
        return path is not None and path.exists()
    except OSError:
        return False


def _when(ended_at: float, now: float) -> str:
    stamp = time.strftime("%a %Y-%m-%d %H:%M", time.localtime(ended_at))
    return f"{stamp} ({format_duration(now - ended_at)} ago)"


def _process_lines(entry: Mapping[str, Any], limit: int) -> list[str]:
    lines = []
    for p in entry["processes"][:limit]:
        ran = format_duration(entry["ended_at"] - p["start_time"]) if p["start_time"] else "?"
        lines.append(f"  {shown(p['comm']):<15} pid {p['pid']:<7} ran {ran:<6}  "
                     f"{shown(p['cmdline'] or '[' + p['comm'] + ']')}")
    more = entry["count"] - min(limit, len(entry["processes"]))
    if more > 0:
        lines.append(f"  … and {more} more (logoutctl kill-history lists them)")
    return lines


def _example(entries: Sequence[Mapping[str, Any]]) -> str:
    """A command worth keeping: the oldest process that is not a shell or a login's own."""
    procs = [p for e in entries for p in e["processes"] if p["cmdline"]]
    useful = [p for p in procs if p["comm"] not in SHELLS] or procs
    if not useful:
        return "COMMAND…"
    return shown(str(min(useful, key=lambda p: p["start_time"] or float("inf"))["cmdline"]))


def render(answer: Mapping[str, Any], now: float | None = None) -> str:
    """The notice, or "" when nothing was ended since the last one."""
    entries = answer["entries"]
    if not entries:
        return ""
    now = time.time() if now is None else now
    latest = entries[-1]
    permissive = latest["mode"] == "permissive"
    where = shown(", ".join(x for x in (latest["service"], latest["tty"]) if x))
    when = _when(latest["ended_at"], now)
    if latest["session"]:
        head = f"logoutd: your session {latest['session']} ({where}) ended {when};"
    else:
        head = f"logoutd: after your last session, {where} stopped {when};"
    n = latest["count"]
    these = "this process" if n == 1 else f"these {n} processes"
    if permissive:
        head += (f" {these} kept running, and will be ended at logout once the administrator "
                 "turns killing on (KillUserProcesses=permissive):")
    else:
        head += f" {these} {'was' if n == 1 else 'were'} ended with it:"
    lines = [head, *_process_lines(latest, SHOWN)]
    if len(entries) > 1:
        lines.append(f"  (and {len(entries) - 1} earlier logout{'s' if len(entries) > 2 else ''}: "
                     "logoutctl kill-history)")
    if not latest["session"]:
        lines.append("Kept programs end when your last session has ended unless you linger: "
                     "logoutctl enable-linger (if your administrator allows it).")
    elif answer["keep_allowed"]:
        lines.append("To keep such a program next time, start it with")
        lines.append(f"  logoutctl run --scope -- {_example(entries)}")
        lines.append("or inside tmux or screen.")
    else:
        lines.append(f"You may not keep programs past logout ({answer['keep_rule']}); your "
                     "administrator decides (KeepAllowUsers=, KeepAllowGroups=, KillExcludeUsers=).")
    lines.append(f"Why, and how to keep programs: {DOC}. "
                 "Turn this notice off: logoutctl login-notice off")
    return "\n".join(lines) + "\n"


def set_off(env: Mapping[str, str], off: bool) -> Path:
    """Create or remove the switch file (as the user; the daemon never reads it)."""
    path = switch_file(env)
    if path is None:
        raise OSError("neither $XDG_CONFIG_HOME nor $HOME is an absolute path")
    if off:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.touch()
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return path
