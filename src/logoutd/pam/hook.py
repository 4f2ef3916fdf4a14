#!/usr/bin/python3 -IS
"""logoutd's PAM hook for pam_exec.so: open_session creates, close_session releases.

Standard library only, and as little of it as possible: it runs at every login, started
with `python3 -IS` (isolated, no site). The leader is the PAM process (our parent). A login never fails or
waits more than the timeout because of logoutd: every path exits 0.

    session optional pam_exec.so quiet seteuid /usr/local/bin/logoutd-pam [--runtime-dir DIR]
        [--socket P] [--timeout S]

It talks to DIR/root.sock (DIR: /run/logoutd), the socket that only root may use. When the
daemon does not answer at session open, the hook fails safe (DESIGN §10): it puts the leader
into a session scope of its own under the managed cgroup root, with the daemon's naming
rules, and records it in DIR/hook/ID.json, which the daemon adopts when it answers again.
"""

import _socket  # the C module: `socket` drags in enum and selectors (~5 ms per login)
import os
import sys
import time

DEFAULT_RUNTIME_DIR = "/run/logoutd"
DEFAULT_TIMEOUT = 2.0
PROC = "/proc"
MOUNTS = "/proc/mounts"
SYSTEMD = "/run/systemd/system"  # exists when systemd is PID 1 (sd_booted)


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


def _object(fields: dict[str, str | int | float]) -> str:
    """A JSON object of strings and numbers."""
    return "{" + ", ".join(
        f"{_quote(k)}: {_quote(v) if isinstance(v, str) else repr(v)}" for k, v in fields.items()
    ) + "}"


def _request(method: str, params: dict[str, str | int]) -> bytes:
    return f'{{"v": 1, "method": {_quote(method)}, "params": {_object(dict(params))}}}\n'.encode()


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


# -- the fail-safe path: only when the daemon did not answer an open_session ----------------


def _cgroup2_mounts() -> list[str]:
    mounts = []
    with open(MOUNTS) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3 and fields[2] == "cgroup2":
                mounts.append(fields[1].replace("\\040", " "))
    return mounts


def _managed_root(runtime_dir: str) -> tuple[str, str]:
    """(the managed cgroup root, that root as /proc/PID/cgroup shows it): from DIR/cgroup-root,
    which the daemon writes at start, else the cgroup2 mount itself (as the daemon's default)."""
    try:
        with open(f"{runtime_dir}/cgroup-root") as f:
            root = f.read().strip().rstrip("/")
    except FileNotFoundError:
        root = ""
    mounts = _cgroup2_mounts()
    if not root:
        if os.path.isdir(SYSTEMD):  # the daemon then runs in a delegated subtree, never the top
            raise OSError(f"{runtime_dir}/cgroup-root is missing and systemd owns the cgroup tree")
        if not mounts:
            raise OSError("no cgroup2 filesystem in /proc/mounts")
        root = mounts[0].rstrip("/")
    inside = [m.rstrip("/") for m in mounts if root == m.rstrip("/") or root.startswith(m.rstrip("/") + "/")]
    mount = max(inside, key=len) if inside else root
    return root, root[len(mount):] or "/"


def _proc_fields(leader: int) -> tuple[str, int]:
    """The leader's cgroup2 path and start time (clock ticks since boot, field 22 of stat)."""
    with open(f"{PROC}/{leader}/cgroup") as f:
        cgroup = next((line[3:].strip() for line in f if line.startswith("0::")), "")
    with open(f"{PROC}/{leader}/stat", "rb") as f:
        stat = f.read()
    return cgroup, int(stat[stat.rindex(b")") + 2:].split()[19])


def _audit_session(leader: int) -> str:
    try:
        with open(f"{PROC}/{leader}/sessionid") as f:
            value = f.read().strip()
    except OSError:
        return ""
    return value if value.isdigit() and value not in ("0", "4294967295") else ""


def _claim(root: str, slice_dir: str, leader: int, start: int) -> str:
    """Make the scope; mkdir is the claim. The daemon's ids are audit ids and c<N>; ours are the
    audit id when no slice has that session, else h<pid>, else h<pid>t<start time>."""
    audit = _audit_session(leader)
    if audit:
        try:
            slices = os.listdir(f"{root}/user.slice")
        except FileNotFoundError:
            slices = []
        if any(os.path.isdir(f"{root}/user.slice/{s}/session-{audit}.scope") for s in slices):
            audit = ""
    for candidate in (audit, f"h{leader}", f"h{leader}t{start}"):
        if not candidate:
            continue
        try:
            os.mkdir(f"{slice_dir}/session-{candidate}.scope")
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"every session id for leader {leader} is taken in {slice_dir}")


def _write_record(runtime_dir: str, session_id: str, record: dict[str, str | int | float]) -> str:
    """DIR/hook/ID.json, atomically (temp file, rename): the daemon reads only whole records."""
    directory = f"{runtime_dir}/hook"
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = f"{directory}/{session_id}.json"
    tmp = f"{directory}/.{session_id}.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        data = (_object(record) + "\n").encode()
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)
    os.rename(tmp, path)
    return path


def _fail_safe(runtime_dir: str, params: dict[str, str | int], user: str, why: str) -> None:
    """The daemon did not answer: track the login ourselves, for the daemon to adopt.

    Order matters: scope (the claim), then the record, then the move; so a leader is never in
    a scope the daemon has no record of (it would take such a scope for an orphan and stop it).
    """
    leader = int(params["leader"])
    try:
        root, root_in_mount = _managed_root(runtime_dir)
        cgroup, start = _proc_fields(leader)
    except (OSError, ValueError, IndexError) as e:
        _warn(f"logoutd did not answer ({why}) and the hook cannot track the session of user "
              f"{user} itself: {e}; login proceeds untracked")
        return
    if cgroup.startswith(root_in_mount.rstrip("/") + "/user.slice/user-"):
        return  # su/sudo inside a session, or the daemon moved it after all
    uid = params["uid"]
    scope = ""
    try:
        os.umask(0o022)  # the same modes as the daemon's cgroups
        slice_dir = f"{root}/user.slice/user-{uid}.slice"
        os.makedirs(slice_dir, exist_ok=True)
        session_id = _claim(root, slice_dir, leader, start)
        scope = f"user.slice/user-{uid}.slice/session-{session_id}.scope"
        record: dict[str, str | int | float] = {
            "v": 1, "id": session_id, "scope": scope, "user": user, "leader_start": start,
            "timestamp": time.time(), "why": why, **params}
        try:
            _write_record(runtime_dir, session_id, record)
        except OSError:
            os.rmdir(f"{root}/{scope}")  # no record, no scope: fail open rather than orphaned
            raise
        with open(f"{root}/{scope}/cgroup.procs", "w") as f:
            f.write(str(leader))
    except OSError as e:
        where = f" ({root}/{scope})" if scope else ""
        _warn(f"logoutd did not answer ({why}) and the hook could not track the session of "
              f"user {user}{where}: {e}; login proceeds untracked unless logoutd adopts it")
        return
    _warn(f"logoutd did not answer ({why}); session {session_id} of user {user} tracked by the "
          f"hook in {root}/{scope}; logoutd adopts it when it answers")


def main(argv: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    env = dict(os.environ) if env is None else env
    socket_path, runtime_dir, timeout = _options(argv)
    kind = env.get("PAM_TYPE", "")
    leader = os.getppid()
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
    if b'"ok": true' in answer:
        return 0
    if b'"session_busy"' in answer or b'"no_such_session"' in answer:
        return 0  # su/sudo inside a session, or a close for a session we never created
    _warn(f"{kind} for leader {leader} failed: {answer.decode(errors='replace').strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
