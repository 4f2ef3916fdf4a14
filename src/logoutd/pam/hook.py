#!/usr/bin/python3 -IS
"""logoutd's PAM hook for pam_exec.so: open_session creates, close_session releases.

Standard library only, and as little of it as possible: it runs at every login, started
with `python3 -IS` (isolated, no site). The leader is the PAM process (our parent). A login never fails or
waits more than the timeout because of logoutd: every path exits 0.

    session optional pam_exec.so quiet seteuid type=open_session /usr/local/bin/logoutd-pam
        [--runtime-dir DIR] [--socket P] [--timeout S]

`type=open_session` is the default line: the leader's exit ends the session, so the close run
(a second Python start at every logout) is optional. Without it the hook also runs at close:
the session is `closing` from then on and stops ReleaseTimeoutSec= later if its leader lives.

It talks to DIR/root.sock (DIR: /run/logoutd), the socket that only root may use. When the
daemon does not answer at session open, the hook fails safe (DESIGN §10, failsafe.py): it
puts the leader into a session scope of its own under the managed cgroup root, with the
daemon's naming rules, and records it in DIR/hook/ID.json for the daemon to adopt.
"""

import _socket  # the C module: `socket` drags in enum and selectors (~5 ms per login)
import posix  # not os (~1 ms per login: stat, posixpath, _collections_abc); os only if failing safe
import sys
import time

DEFAULT_RUNTIME_DIR = "/run/logoutd"
DEFAULT_TIMEOUT = 2.0
FAIL_SAFE = "failsafe.py"  # install_hook() installs it beside the hook as <hook>-failsafe.py
# How api/protocol.py's answers begin: a success, and a refusal up to its error code.
OK_ANSWER = b'{"v": 1, "ok": true, "result": '
REFUSAL = b'{"v": 1, "ok": false, "error": {"code": "'


def _quote(value: str) -> str:
    """A JSON string literal (json is not imported: it costs milliseconds at every login)."""
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch < " " or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _request(method: str, params: dict[str, str | int]) -> bytes:
    fields = ", ".join(
        f"{_quote(k)}: {v if isinstance(v, int) else _quote(v)}" for k, v in params.items()
    )
    return (f'{{"v": 1, "method": {_quote(method)}, "params": {{{fields}}}}}\n').encode()


def _warn(message: str) -> None:
    import syslog

    syslog.openlog("logoutd-pam", syslog.LOG_PID, syslog.LOG_AUTHPRIV)
    syslog.syslog(syslog.LOG_WARNING, message)
    if "--debug" in sys.argv:
        sys.stderr.write(f"logoutd-pam: {message}\n")


def _call(path: str, payload: bytes, timeout: float) -> bytes:
    """Send one request, return the answer line; raises OSError (incl. timeouts)."""
    deadline = time.monotonic() + timeout
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(payload)
        answer = b""
        while not answer.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer within {timeout:g} s")
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer
    finally:
        sock.close()


def _options(argv: list[str]) -> tuple[str, str, float]:
    """--runtime-dir DIR, --socket PATH and --timeout SECONDS (also as --opt=value).

    Only the command line counts: the environment is the login's PAM environment, which a
    user's pam_env file can fill (LOGOUTD_SOCKET pointing at a dead socket, say).
    """
    values = {"runtime-dir": "", "socket": "", "timeout": ""}
    for i, arg in enumerate(argv):
        for name in values:
            if arg == f"--{name}" and i + 1 < len(argv):
                values[name] = argv[i + 1]
            elif arg.startswith(f"--{name}="):
                values[name] = arg.split("=", 1)[1]
    try:
        timeout = max(0.1, float(values["timeout"] or DEFAULT_TIMEOUT))
    except ValueError:
        timeout = DEFAULT_TIMEOUT
    runtime_dir = values["runtime-dir"] or DEFAULT_RUNTIME_DIR
    return values["socket"] or f"{runtime_dir}/root.sock", runtime_dir, timeout


def _session_params(env: dict[str, str], leader: int) -> dict[str, str | int]:
    import pwd

    user = env.get("PAM_USER", "")
    uid = pwd.getpwnam(user).pw_uid
    tty = env.get("PAM_TTY", "")
    params: dict[str, str | int] = {"uid": uid, "leader": leader, "service": env.get("PAM_SERVICE", "")}
    # pam_systemd's TTY rules: "ssh" means a tty session without a tty; "cron" is background;
    # anything with a colon is an X display.
    if tty == "ssh":
        params["type"] = "tty"
    elif tty == "cron":
        params["type"], params["class"] = "unspecified", "background"
    elif ":" in tty:
        params["display"] = tty
    elif tty:
        params["tty"] = tty[5:] if tty.startswith("/dev/") else tty
    rhost = env.get("PAM_RHOST", "")
    if rhost:
        params["remote_host"] = rhost
    ruser = env.get("PAM_RUSER", "")
    if ruser:
        params["remote_user"] = ruser
    return params


def _outcome(answer: bytes) -> tuple[bool, bytes] | None:
    """(ok, the error code of a refusal) of the daemon's answer; None for any other shape."""
    # Not json (~8 ms at every login): the whole answer must have the one shape api/protocol.py
    # encodes (the tests hold the two together), matched from its start, so no text inside a
    # message can pass for success.
    if answer.count(b"\n") != 1 or not answer.endswith(b"}\n"):
        return None
    if answer.startswith(OK_ANSWER):
        return True, b""
    if answer.startswith(REFUSAL):
        code, quote, _ = answer[len(REFUSAL):].partition(b'"')
        return (False, code) if quote and b"\\" not in code else None
    return None


def _fail_safe(runtime_dir: str, params: dict[str, str | int], user: str, why: str) -> None:
    """Track the login without the daemon (failsafe.py, next to this file). Compiled only here:
    a script is compiled at every start, and this code would cost every login ~2 ms."""
    import os

    path = os.path.join(os.path.dirname(os.path.realpath(__file__)), FAIL_SAFE)
    namespace: dict[str, object] = {"__name__": "logoutd_pam_failsafe"}
    try:
        with open(path) as f:
            exec(compile(f.read(), path, "exec"), namespace)
    except OSError as e:
        _warn(f"logoutd did not answer ({why}) and the hook's fail-safe part is missing ({e}); "
              f"login of user {user} proceeds untracked")
        return
    namespace["fail_safe"](runtime_dir, params, user, why, _warn, _quote)  # type: ignore[operator]


def main(argv: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if env is None:
        env = {k.decode(errors="surrogateescape"): v.decode(errors="surrogateescape")
               for k, v in posix.environ.items()}
    socket_path, runtime_dir, timeout = _options(argv)
    kind = env.get("PAM_TYPE", "")
    leader = posix.getppid()
    try:
        if kind == "open_session":
            params = _session_params(env, leader)
            payload = _request("create_session", params)
        elif kind == "close_session":
            payload = _request("release_session", {"leader": leader})
        else:
            return 0  # auth, account, password: nothing to do
        answer = _call(socket_path, payload, timeout)
        if not answer:  # the daemon closed the connection without a word (it crashed)
            raise ConnectionResetError("connection closed without an answer")
    except KeyError:
        _warn(f"user {env.get('PAM_USER', '')!r} is unknown; no session created")
        return 0
    except OSError as e:
        if kind == "open_session":
            why = f"no answer within {timeout:g} s" if isinstance(e, TimeoutError) else \
                f"{socket_path}: {e.strerror or e}"
            _fail_safe(runtime_dir, params, env.get("PAM_USER", ""), why)
        else:
            _warn(f"logoutd not reachable at {socket_path} ({e}); logout goes on without it")
        return 0
    outcome = _outcome(answer)
    if outcome is None:
        _warn(f"{kind} for leader {leader}: logoutd's answer is not understood: {answer!r}")
    elif not outcome[0] and outcome[1] not in (b"session_busy", b"no_such_session"):
        # Busy: su/sudo inside a session; no such session: a close of one we never created.
        _warn(f"{kind} for leader {leader} refused by logoutd: "
              f"{answer.decode(errors='replace').strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
