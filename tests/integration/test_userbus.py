"""Stock systemd-run and systemctl (Debian's systemd 252) against logoutd's per-user systemd1
endpoint, run by a test user inside real ssh logins through the pam_exec hook: scopes and
services survive logout and show in `logoutctl list-units`, `systemctl --user stop` ends them,
`--wait` passes the exit status on, a denying [Policy] refuses with its message and keeps
nothing, another user is refused, a hostile peer is dropped and the daemon serves on."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness.checks import wait_gone
from tests.integration.harness.ctl import ctl
from tests.integration.harness.procs import Proc, wait_for

pytestmark = pytest.mark.skipif(
    not Path("/usr/bin/systemd-run").exists() or not Path("/usr/bin/systemctl").exists(),
    reason="needs systemd-run and systemctl (Debian package systemd)")


def xdg(daemon: Any, user: Any) -> str:
    return f"{daemon.user_runtime_root}/{user.uid}"


def in_login(sshd: Any, daemon: Any, user: Any, command: str,
             timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """One ssh login of the user running `command` with XDG_RUNTIME_DIR set (pam_systemd would
    set it; the pam_exec hook cannot, logoutd's profile.d script does)."""
    return sshd.run(user, f"export XDG_RUNTIME_DIR={xdg(daemon, user)}; {command}",
                    timeout=timeout)


def units_of(daemon: Any, user: Any) -> list[dict[str, Any]]:
    return [u for u in daemon.call("list_units")["units"] if u["uid"] == user.uid]


def unit_named(daemon: Any, user: Any, name: str) -> dict[str, Any] | None:
    return next((u for u in units_of(daemon, user)
                 if u["name"] == name and u["state"] == "active" and u["pids"]), None)


def endpoint(daemon: Any, user: Any) -> Path:
    return Path(xdg(daemon, user)) / "systemd" / "private"


def lingering(daemon: Any, user: Any) -> None:
    """Linger, so the user (and its units) outlive the last session past UserStopDelaySec=."""
    daemon.call("set_linger", uid=user.uid, enable=True)
    wait_for(lambda: endpoint(daemon, user).is_socket() and
             (Path(xdg(daemon, user)) / "bus").is_socket(), 10, "the user's systemd1 endpoints")


def test_scope_and_service_survive_logout_and_systemctl_stops_them(env, user, sshd, daemon):
    lingering(daemon, user)
    # The scope: systemd-run moves itself into the scope, then execs sleep.
    out = f"{xdg(daemon, user)}/scope.out"
    scope = in_login(sshd, daemon, user,
                     f"systemd-run --user --scope --unit=keep-scope sleep 1000 >{out} 2>&1 "
                     f"</dev/null & for i in $(seq 100); do [ -s {out} ] && break; sleep 0.1; "
                     f"done; sleep 0.5; cat {out}")
    assert scope.returncode == 0, scope
    assert scope.stdout == "Running scope as unit: keep-scope.scope\n", scope
    unit = daemon.wait_for(lambda: unit_named(daemon, user, "keep-scope.scope"), 10,
                           "the scope")
    procs = [Proc.of(pid, "keep-scope") for pid in unit["pids"]]
    env.track(procs)
    # The service: spawned by the daemon; systemd-run returns once it started.
    service = in_login(sshd, daemon, user, "systemd-run --user --unit=keep-svc sleep 1000; "
                                           "echo rc=$?")
    assert service.stdout == "rc=0\n", service
    assert service.stderr == "Running as unit: keep-svc.service\n", service
    svc = daemon.wait_for(lambda: unit_named(daemon, user, "keep-svc.service"), 10,
                          "the service")
    svc_procs = [Proc.of(pid, "keep-svc") for pid in svc["pids"]]
    env.track(svc_procs)
    # Both logins are over; the units run on and logoutctl shows them.
    wait_for(lambda: not daemon.sessions(user.name), 20, "the sessions to end")
    assert all(p.alive() for p in procs + svc_procs)
    listed = ctl(env, "list-units")
    assert "keep-scope.scope" in listed.out and "keep-svc.service" in listed.out, listed
    # systemctl --user sees and stops them, from a new login.
    shown = in_login(sshd, daemon, user, "systemctl --user list-units --no-pager --no-legend; "
                                         "systemctl --user is-active keep-svc.service; "
                                         "systemctl --user stop keep-scope.scope keep-svc.service;"
                                         " echo rc=$?")
    lines = shown.stdout.splitlines()
    assert any(line.split()[:4] == ["keep-scope.scope", "loaded", "active", "running"]
               for line in lines), shown
    assert any(line.split()[:4] == ["keep-svc.service", "loaded", "active", "running"]
               for line in lines), shown
    assert lines[-2:] == ["active", "rc=0"], shown
    wait_gone(env, procs + svc_procs, 10, "the stopped units")
    daemon.wait_for(lambda: not units_of(daemon, user), 10, "the units to be removed")
    gone = in_login(sshd, daemon, user, "systemctl --user stop keep-svc.service; echo rc=$?")
    assert gone.stderr == "Failed to stop keep-svc.service: Unit keep-svc.service not loaded.\n"
    assert gone.stdout == "rc=5\n", gone


def test_wait_passes_the_exit_status_on_and_kill_signals(env, user, sshd, daemon):
    lingering(daemon, user)
    failed = in_login(sshd, daemon, user, "systemd-run --user --wait false; echo rc=$?")
    assert failed.stdout == "rc=1\n", failed
    assert "Finished with result: exit-code" in failed.stderr, failed
    assert "Main processes terminated with: code=exited/status=1" in failed.stderr, failed
    ok = in_login(sshd, daemon, user,
                  "systemd-run --user --wait -E GREETING=hi --working-directory=/tmp "
                  "sh -c 'test \"$GREETING $PWD\" = \"hi /tmp\"'; echo rc=$?")
    assert ok.stdout == "rc=0\n" and "Finished with result: success" in ok.stderr, ok
    # systemctl kill reaches the service's processes; --wait reports the signal.
    out = f"{xdg(daemon, user)}/wait.out"
    waiting = in_login(sshd, daemon, user,
                       f"(systemd-run --user --wait --unit=victim sleep 1000 >{out} 2>&1; "
                       f"echo rc=$? >>{out}) </dev/null & "
                       "for i in $(seq 100); do systemctl --user is-active -q victim && break; "
                       "sleep 0.1; done; systemctl --user kill --signal=KILL victim; "
                       f"for i in $(seq 100); do grep -q rc= {out} && break; sleep 0.1; done; "
                       f"cat {out}")
    assert "Main processes terminated with: code=killed/status=KILL" in waiting.stdout, waiting
    assert waiting.stdout.splitlines()[-1] not in ("rc=0", "rc=124"), waiting
    daemon.wait_for(lambda: not units_of(daemon, user), 10, "the units to be removed")


def test_policy_denial_fails_the_command_and_keeps_nothing(env, user, sshd, start_daemon):
    audit = env.tmp / "audit.log"
    daemon = start_daemon(f"[Policy]\nKeepAllowUsers=root\n[Logoutd]\nAuditLog={audit}\n")
    lingering(daemon, user)
    why = (f"user {user.name} is not in KeepAllowUsers=root KeepAllowGroups=(empty).")
    for kind, flags in (("scope", "--scope"), ("service", "")):
        denied = in_login(sshd, daemon, user,
                          f"systemd-run --user {flags} --unit=denied-{kind} sleep 1000; "
                          "echo rc=$?")
        assert denied.stderr == (
            f"Failed to start transient {kind} unit: Keeping processes after logout is denied "
            f"by the administrator's policy (logoutd [Policy]): {why}\n"), denied
        assert denied.stdout == "rc=1\n", denied
    assert units_of(daemon, user) == []
    records = [line for line in audit.read_text().splitlines() if '"keep"' in line]
    assert len(records) == 2 and all('"granted": false' in r and '"client": "systemd-run"' in r
                                     for r in records), records


def test_another_user_is_refused(env, user, user2, sshd, daemon):
    lingering(daemon, user)
    path = endpoint(daemon, user)
    assert path.stat().st_uid == user.uid and path.stat().st_mode & 0o777 == 0o600
    # The file mode stops user2 at connect()...
    probe = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
             "try:\n s.connect(sys.argv[1]); s.sendall(b'\\0AUTH EXTERNAL\\r\\n');"
             " print(repr(s.recv(100)))\nexcept OSError as e: print(type(e).__name__)\n")
    refused = subprocess.run(["runuser", "-u", user2.name, "--", "python3", "-c", probe,
                              str(path)], capture_output=True, text=True, timeout=30)
    assert refused.stdout == "PermissionError\n", refused
    # ...and the kernel's peer credentials stop it even where the modes would not.
    runtime = Path(xdg(daemon, user))
    os.chmod(path, 0o666)
    os.chmod(runtime, 0o711)
    try:
        refused = subprocess.run(["runuser", "-u", user2.name, "--", "python3", "-c", probe,
                                  str(path)], capture_output=True, text=True, timeout=30)
    finally:
        os.chmod(runtime, 0o700)
        os.chmod(path, 0o600)
    # Closed without a word; the close may come before the send (EPIPE) or after it.
    assert refused.stdout in ("b''\n", "ConnectionResetError\n", "BrokenPipeError\n"), refused
    assert f"refused a systemd1 client of uid {user2.uid}" in daemon.log()
    # user2's own systemd-run, pointed at user's runtime dir, fails to connect.
    other = subprocess.run(["runuser", "-u", user2.name, "--", "env",
                            f"XDG_RUNTIME_DIR={xdg(daemon, user)}", "systemd-run", "--user",
                            "--scope", "true"], capture_output=True, text=True, timeout=30)
    assert other.returncode != 0 and "Failed to connect to bus" in other.stderr, other


def _raw(path: Path, data: bytes, *, wait: float = 10.0) -> bytes:
    """Send data as root (allowed: root may act for the user), return what came back until the
    daemon closed the connection."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(wait)
        s.connect(str(path))
        s.sendall(data)
        got = b""
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            while chunk := s.recv(65536):
                got += chunk
        return got


def test_hostile_peers_are_dropped_and_the_daemon_serves_on(env, user, sshd, daemon):
    lingering(daemon, user)
    path = endpoint(daemon, user)
    uid_hex = str(0).encode().hex().encode()
    auth = b"\0AUTH EXTERNAL " + uid_hex + b"\r\nBEGIN\r\n"
    # Garbage before the auth: no NUL byte.
    assert _raw(path, b"GET / HTTP/1.0\r\n\r\n") == b""
    # A line longer than any auth command.
    assert _raw(path, b"\0AUTH " + b"A" * 100_000) == b""
    # Claiming another uid than the kernel's.
    assert _raw(path, b"\0AUTH EXTERNAL " + b"1234".hex().encode() + b"\r\n") == b""
    # Garbage after the auth: not a D-Bus message.
    got = _raw(path, auth + b"\xff" * 64)
    assert got.startswith(b"OK ") and got.count(b"\r\n") == 1, got
    # A message announcing 100 MiB: dropped at its header, nothing read further.
    huge = b"l\x01\x00\x01" + (100 << 20).to_bytes(4, "little") + b"\x01\0\0\0" + \
        (16).to_bytes(4, "little")
    started = time.monotonic()
    assert _raw(path, auth + huge).count(b"\r\n") == 1
    # A peer that stops mid-auth is dropped at the auth deadline (5 s).
    assert _raw(path, b"\0AUTH EXT", wait=30) == b""
    assert time.monotonic() - started < 25
    # A peer that sends a message header and stalls is dropped at the message deadline.
    assert _raw(path, auth + huge[:10], wait=30).count(b"\r\n") == 1
    log = daemon.log()
    for why in ("no NUL byte", "auth line too long", "claims another uid",
                "not a D-Bus message", "more than 1048576", "too slow"):
        assert why in log, (why, daemon.log_tail())
    # The daemon serves on: the user's systemd-run works, logoutctl answers.
    served = in_login(sshd, daemon, user, "systemd-run --user --wait true; echo rc=$?")
    assert served.stdout == "rc=0\n", served
    assert daemon.call("status")["pid"] == daemon.popen.pid


def test_endpoints_come_and_go_with_the_user(env, user, sshd, daemon):
    """Created at the user's start, owned by the user; gone with the user."""
    result = in_login(sshd, daemon, user, "stat -c '%U %a %F' $XDG_RUNTIME_DIR/systemd/private "
                                          "$XDG_RUNTIME_DIR/bus")
    assert result.stdout == f"{user.name} 600 socket\n{user.name} 600 socket\n", result
    daemon.wait_for(lambda: not daemon.users() or None, 20, "the user to be removed")
    assert not endpoint(daemon, user).exists()
    assert "serving systemd1" in daemon.log()


def test_in_a_login1_session_with_nothing_set_by_hand(env, user, systemd_pam, bus, dbus_daemon):
    """pam_systemd's session (logoutd --dbus on a private system bus): XDG_RUNTIME_DIR comes
    from CreateSession's reply, and the stock commands find logoutd there unaided."""
    daemon = dbus_daemon
    sshd = env.sshd(systemd_pam, bus)
    lingering(daemon, user)
    out = f"{xdg(daemon, user)}/l1.out"
    result = sshd.run(user, "echo $XDG_RUNTIME_DIR; systemd-run --user --wait false; "
                            "echo rc=$?; systemd-run --user --scope --unit=l1-scope sleep 1000 "
                            f">{out} 2>&1 </dev/null & for i in $(seq 100); do [ -s {out} ] && "
                            f"break; sleep 0.1; done; cat {out}", timeout=60)
    assert result.stdout.splitlines() == [
        xdg(daemon, user), "rc=1", "Running scope as unit: l1-scope.scope"], result
    unit = daemon.wait_for(lambda: unit_named(daemon, user, "l1-scope.scope"), 10, "the scope")
    procs = [Proc.of(pid, "l1-scope") for pid in unit["pids"]]
    env.track(procs)
    wait_for(lambda: not daemon.sessions(user.name), 20, "the session to end")
    assert all(p.alive() for p in procs)
    stopped = sshd.run(user, "systemctl --user stop l1-scope.scope; echo rc=$?", timeout=60)
    assert stopped.stdout == "rc=0\n", stopped
    wait_gone(env, procs, 10, "the stopped scope")


def _call(sock: socket.socket, serial: int, path: str, interface: str, member: str,
          signature: str = "", body: list[Any] | None = None) -> Any:
    """One call on an authenticated connection; the reply (signals in between skipped)."""
    from dbus_fast import Message

    from logoutd.userbus.codec import decode, encode
    from logoutd.userbus.wire import message_size

    msg = Message(destination="org.freedesktop.systemd1", path=path, interface=interface,
                  member=member, signature=signature, body=body or [], serial=serial)
    sock.sendall(encode(msg))
    while True:
        fixed = _recv_exactly(sock, 16)
        reply = decode(fixed + _recv_exactly(sock, message_size(fixed) - 16))
        if reply is not None and reply.reply_serial == serial:
            return reply


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def test_unknown_calls_get_systemds_error_names(env, user, sshd, daemon):
    pytest.importorskip("dbus_fast")
    from dbus_fast import MessageType, Variant
    lingering(daemon, user)
    manager, mgr = "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"
    props = "org.freedesktop.DBus.Properties"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(endpoint(daemon, user)))
        sock.sendall(b"\0AUTH EXTERNAL " + b"0".hex().encode() + b"\r\nBEGIN\r\n")
        assert _recv_exactly(sock, 37).startswith(b"OK ")
        cases = [
            ((manager, mgr, "Reboot"), "org.freedesktop.DBus.Error.UnknownMethod"),
            ((manager, mgr, "EnableUnitFiles", "asbb", [["x.service"], False, False]),
             "org.freedesktop.DBus.Error.UnknownMethod"),
            ((manager, mgr, "GetUnit", "s", ["nope.service"]),
             "org.freedesktop.systemd1.NoSuchUnit"),
            ((manager, mgr, "StartUnit", "ss", ["nope.service", "replace"]),
             "org.freedesktop.systemd1.NoSuchUnit"),
            ((manager, mgr, "StartTransientUnit", "ssa(sv)a(sa(sv))",
              ["t.service", "fail", [], []]), "org.freedesktop.DBus.Error.InvalidArgs"),
            ((manager, mgr, "StartTransientUnit", "ssa(sv)a(sa(sv))",
              ["t.scope", "fail", [["PIDs", Variant("s", "not pids")]], []]),
             "org.freedesktop.DBus.Error.InvalidArgs"),
            ((manager, mgr, "StartTransientUnit", "ssa(sv)a(sa(sv))",
              ["t.service", "fail", [["MemoryMax", Variant("t", 1 << 30)]], []]),
             "org.freedesktop.DBus.Error.PropertyReadOnly"),
            ((manager, props, "Get", "ss", [mgr, "NoSuchThing"]),
             "org.freedesktop.DBus.Error.UnknownProperty"),
            ((manager, props, "Set", "ssv", [mgr, "Version", ("s", "x")]),
             "org.freedesktop.DBus.Error.PropertyReadOnly"),
            (("/org/freedesktop/systemd1/unit/nope_2eservice", props, "GetAll", "s", [""]),
             "org.freedesktop.DBus.Error.UnknownObject"),
        ]
        for serial, (args, name) in enumerate(cases, start=1):
            if args[2] == "Set":
                args = (*args[:4], [mgr, "Version", Variant("s", "x")])
            reply = _call(sock, serial, *args)
            assert reply.message_type is MessageType.ERROR and reply.error_name == name, \
                (args, reply.error_name, reply.body)
        version = _call(sock, 100, manager, props, "Get", "ss", [mgr, "Version"])
        assert version.body[0].value.startswith("logoutd "), version.body
        assert _call(sock, 101, manager, "org.freedesktop.DBus.Peer", "Ping").body == []
        xml = _call(sock, 102, manager, "org.freedesktop.DBus.Introspectable", "Introspect")
        assert '<method name="StartTransientUnit"/>' in xml.body[0]


def test_connections_per_user_are_capped(env, user, sshd, daemon):
    from logoutd.userbus.server import MAX_CONNECTIONS

    lingering(daemon, user)
    path = endpoint(daemon, user)
    auth = b"\0AUTH EXTERNAL " + b"0".hex().encode() + b"\r\nBEGIN\r\n"
    held = []
    try:
        for _ in range(MAX_CONNECTIONS):
            sock = socket.socket(socket.AF_UNIX)
            held.append(sock)
            sock.settimeout(10)
            sock.connect(str(path))
            sock.sendall(auth)
            assert _recv_exactly(sock, 37).startswith(b"OK ")
        assert _raw(path, auth) == b""  # one more: closed at once
        assert f"{MAX_CONNECTIONS} connections already" in daemon.log()
    finally:
        for sock in held:
            sock.close()

    def accepted() -> bool:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(path))
            sock.sendall(auth)
            return sock.recv(3) == b"OK "
    wait_for(accepted, 10, "the closed connections to be let go")
    served = in_login(sshd, daemon, user, "systemctl --user list-units --no-legend; echo rc=$?")
    assert served.stdout == "rc=0\n", served


def test_after_a_killed_daemon_the_stale_sockets_are_replaced(env, user, sshd, daemon):
    lingering(daemon, user)
    daemon.kill()  # SIGKILL: the sockets stay behind, nobody listening
    assert endpoint(daemon, user).is_socket()
    daemon.start()
    wait_for(lambda: daemon.log().count(f"{xdg(daemon, user)}/bus.") == 2, 10,
             "the bus socket to be served again")
    served = in_login(sshd, daemon, user, "systemd-run --user --wait true; echo rc=$?")
    assert served.stdout == "rc=0\n", served


def test_a_users_own_bus_is_left_alone(env, user, sshd, daemon):
    """A dbus-daemon the user runs at $XDG_RUNTIME_DIR/bus is not replaced."""
    runtime = Path(xdg(daemon, user))
    daemon.call("set_linger", uid=user.uid, enable=True)
    wait_for(lambda: (runtime / "bus").is_socket(), 10, "the bus socket")
    daemon.call("set_linger", uid=user.uid, enable=False)
    daemon.wait_for(lambda: not daemon.users() or None, 20, "the user to be removed")
    # Stand in for the user's own bus: a listening socket logoutd did not make.
    daemon.stop()
    runtime.mkdir(mode=0o700)
    os.chown(runtime, user.uid, user.gid)
    theirs = socket.socket(socket.AF_UNIX)
    theirs.bind(str(runtime / "bus"))
    theirs.listen(1)
    try:
        daemon.start()
        lingering(daemon, user)
        wait_for(lambda: "a user bus is already there" in daemon.log(), 10, "the refusal")
        assert (runtime / "bus").stat().st_uid == 0  # still the stand-in's
    finally:
        theirs.close()
