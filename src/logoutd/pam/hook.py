#!/usr/bin/python3 -IS
"""logoutd's PAM hook for pam_exec.so: open_session creates, close_session releases.

Standard library only, and as little of it as possible: it runs at every login, started
with `python3 -IS` (isolated, no site). The leader is the PAM process (our parent). A login never fails or
waits more than the timeout because of logoutd: every path exits 0.

    session optional pam_exec.so quiet seteuid /usr/local/bin/logoutd-pam [--socket P] [--timeout S]
"""

import _socket  # the C module: `socket` drags in enum and selectors (~5 ms per login)
import os
import sys
import time

DEFAULT_SOCKET = "/run/logoutd/api.sock"
DEFAULT_TIMEOUT = 2.0


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
                raise TimeoutError(f"no answer within {timeout:g}s")
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer
    finally:
        sock.close()


def _options(argv: list[str]) -> tuple[str, float]:
    """--socket PATH and --timeout SECONDS (also as --opt=value); anything else is ignored."""
    values = {"socket": os.environ.get("LOGOUTD_SOCKET") or DEFAULT_SOCKET, "timeout": ""}
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
    return values["socket"], timeout


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


def main(argv: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    env = dict(os.environ) if env is None else env
    socket_path, timeout = _options(argv)
    kind = env.get("PAM_TYPE", "")
    leader = os.getppid()
    try:
        if kind == "open_session":
            payload = _request("create_session", _session_params(env, leader))
        elif kind == "close_session":
            payload = _request("release_session", {"leader": leader})
        else:
            return 0  # auth, account, password: nothing to do
        answer = _call(socket_path, payload, timeout)
    except KeyError:
        _warn(f"user {env.get('PAM_USER', '')!r} is unknown; no session created")
        return 0
    except OSError as e:
        then = "login proceeds" if kind == "open_session" else "logout goes on"
        _warn(f"logoutd not reachable at {socket_path} ({e}); {then} without it")
        return 0
    if b'"ok": true' in answer:
        return 0
    if b'"session_busy"' in answer or b'"no_such_session"' in answer:
        return 0  # su/sudo inside a session, or a close for a session we never created
    _warn(f"{kind} for leader {leader} failed: {answer.decode(errors='replace').strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
