"""kill-history: what the user's last logouts ended (or, permissive, would have); `--notice` is
the short block the shell integration prints at an interactive login, once. login-notice: the
user's switch for that block (a file of the user's, read by this client, never the daemon)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from logoutd.cli import notice, resolve
from logoutd.cli.output import shown
from logoutd.cli.verb import Invocation, Verb
from logoutd.core.killrecords import format_duration
from logoutd.errors import InvalidArgument, LogoutdError

WHY_KILLED = Path(__file__).parents[2] / "docs" / "why-killed.md"
NOTICE_TIMEOUT = 2.0  # seconds the login waits for the daemon, at most, to connect and to answer


def run(inv: Invocation) -> int:
    params: dict[str, object] = {}
    if inv.words:
        uid = resolve.user(inv.words[0])
        if uid is not None:
            params["uid"] = uid
    if inv.options.notice:
        return _notice(inv, params)
    answer = inv.call("kill_history", **params)
    if inv.output.json:
        inv.output.emit_json("kill_history", answer)
        return 0
    rows = []
    for entry in answer["entries"]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["ended_at"]))
        for p in entry["processes"]:
            ran = format_duration(entry["ended_at"] - p["start_time"]) \
                if p["start_time"] else "-"
            rows.append([when, entry["session"] or "-", shown(entry["service"]) or "-",
                         entry["mode"], str(p["pid"]), ran, shown(p["cmdline"] or f"[{p['comm']}]")])
        if entry["count"] > len(entry["processes"]):
            rows.append([when, entry["session"] or "-", shown(entry["service"]) or "-",
                         entry["mode"], "…", "",
                         f"({entry['count'] - len(entry['processes'])} more, not named)"])
    inv.output.show_table(["ENDED", "SESSION", "SERVICE", "MODE", "PID", "RAN", "COMMAND"], rows,
                          (4,), "ended processes")
    return 0


def _notice(inv: Invocation, params: dict[str, object]) -> int:
    """Never fails a login: nothing to say, switched off, or no daemon are all silent."""
    env = inv.env if inv.env is not None else os.environ
    if params or inv.output.json:
        raise InvalidArgument("--notice takes no user and no --json: it is the login's own notice.")
    if notice.is_off(env):
        return 0
    inv.client.timeout = min(inv.client.timeout, NOTICE_TIMEOUT)
    try:
        answer = inv.call("kill_history", notice=True)
    except LogoutdError:
        return 0
    text = notice.render(answer)
    if text:
        inv.output.out.write(text)
    return 0


def why_killed(inv: Invocation) -> int:
    """The user's page (docs/why-killed.md): why a program died at logout, how to keep one."""
    inv.output.out.write(WHY_KILLED.read_text())
    return 0


def switch(inv: Invocation) -> int:
    env = inv.env if inv.env is not None else os.environ
    word = inv.words[0] if inv.words else ""
    if word not in ("", "on", "off"):
        raise InvalidArgument(f"Invalid argument '{word}' for login-notice: on or off.")
    if word:
        try:
            made = notice.set_off(env, word == "off")
        except OSError as e:
            raise InvalidArgument(f"Cannot switch the login notice {word}: {e}.") from None
        inv.output.print(f"Login notice {word} ({shown(str(made))} "
                         f"{'created' if word == 'off' else 'removed'}).")
        return 0
    state, path = "off" if notice.is_off(env) else "on", notice.switch_file(env)
    if inv.output.json:
        inv.output.emit_json("login_notice", {"state": state, "file": str(path or "")})
    else:
        inv.output.print(f"Login notice {state} ({shown(str(path)) if path else 'no $HOME'}).")
    return 0


VERB = Verb("kill-history", run, "What your last logouts ended, and how to keep it (--notice: "
            "the login's notice, once)", "[USER]", max_words=1, group="Process")
SWITCH = Verb("login-notice", switch, "Show, or switch on or off, the notice at your next login",
              "[on|off]", max_words=1, group="Process")
WHY = Verb("why-killed", why_killed, "Why programs end at logout, and how to keep one (a page)",
           max_words=0, group="Process")
