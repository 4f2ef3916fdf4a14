"""logoutctl and the socket API as the tests drive them: in-process as root, in a child running
as a test user, or as a line of a session script; each against the test's daemon (env.socket)."""

from __future__ import annotations

import functools
import io
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.readable import for_users

from .checks import open_held
from .daemon import src_dir

PY = "/usr/bin/python3"  # the venv's python lives under root's 0700 home


@functools.cache
def user_src() -> Path:
    """The `logoutd` package's parent, readable by the test users (their PYTHONPATH)."""
    return for_users(src_dir())


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    def json(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.out)  # type: ignore[no-any-return]


def ctl(env: Any, *argv: str, tty: bool = False, **environ: str) -> Result:
    """logoutctl in-process, as root, against the test's daemon."""
    from logoutd.cli.ctl import main

    out, err = (Terminal() if tty else io.StringIO()), io.StringIO()
    rc = main(list(argv), {"LOGOUTD_SOCKET": str(env.socket), **environ}, out, err)
    return Result(rc, out.getvalue(), err.getvalue())


def ctl_as(env: Any, user: Any, *argv: str) -> Result:
    """logoutctl in a child process running as `user` (uid, gid, no supplementary groups)."""
    done = subprocess.run(
        [PY, "-m", "logoutd.cli.ctl", *argv],
        user=user.uid, group=user.gid, extra_groups=[], capture_output=True, text=True,
        timeout=30, cwd="/",
        env={"PYTHONPATH": str(user_src()), "PATH": "/usr/bin:/bin", "LOGOUTD_SOCKET": str(env.socket)},
    )
    return Result(done.returncode, done.stdout, done.stderr)


def ctl_words(env: Any) -> str:
    """The shell words that run logoutctl against the test's daemon (in a session script)."""
    return f"PYTHONPATH={user_src()} LOGOUTD_SOCKET={env.socket} {PY} -m logoutd.cli.ctl"


def in_session(env: Any, tag: str, *argv: str, stderr: bool = False) -> str:
    """A session-script snippet: logoutctl ARGV, its output (and with `stderr` its errors)
    between BEGIN/END lines that carry its exit status; read it with tagged()."""
    words = " ".join(argv) + (" 2>&1" if stderr else "")
    return f'echo "BEGIN {tag}"; {ctl_words(env)} {words}; echo "END {tag} $?"'


def tagged(login: Any, tag: str) -> tuple[int, list[str]]:
    """The exit status and output lines of the in_session() snippet `tag` of this login."""
    lines = login.lines
    start = lines.index(f"BEGIN {tag}")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(f"END {tag} "))
    return int(lines[end].split()[-1]), lines[start + 1 : end]


def open_login(env: Any, pam: Any, user: Any, daemon: Any, *kinds: str, extra: str = "") -> Any:
    """A held `su -l` login of `user` leaving `kinds` behind; returns login, procs, session."""
    return open_held(env, daemon, "su", pam, user, *kinds, extra=extra)


_CALL = """\
import json, sys, time
from logoutd.api.client import Client
from logoutd.errors import LogoutdError
socket, method, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
t0 = time.monotonic()
try:
    r = {"ok": True, "result": Client(socket, timeout=30).call(method, **params)}
except LogoutdError as e:
    r = {"ok": False, "code": e.code, "message": e.message}
r["seconds"] = time.monotonic() - t0
print(json.dumps(r))
"""


def call_as(env: Any, user: Any, method: str, **params: Any) -> subprocess.Popen[str]:
    """One API call from a child running as `user` (no supplementary groups, outside any
    session), left running; read it with answer()."""
    return subprocess.Popen([PY, "-c", _CALL, str(env.socket), method, json.dumps(params)],
                            user=user.uid, group=user.gid, extra_groups=[], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/",
                            env={"PYTHONPATH": str(user_src())})


def answer(child: subprocess.Popen[str], timeout: float = 30) -> dict[str, Any]:
    """{"ok": True, "result", "seconds"} or {"ok": False, "code", "message", "seconds"}."""
    out, err = child.communicate(timeout=timeout)
    assert child.returncode == 0, f"client child failed: {err}"
    return json.loads(out)  # type: ignore[no-any-return]


def api_as(env: Any, user: Any, method: str, **params: Any) -> dict[str, Any]:
    """One API call as `user`, waited for: {"result": …} or {"code", "message"}."""
    done = answer(call_as(env, user, method, **params))
    return {k: v for k, v in done.items() if k in ("result", "code", "message")}
