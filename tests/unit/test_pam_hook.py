"""The PAM hook as pam_exec runs it (`python3 -IS`): what it imports and what it sends; its
fail-safe path when the daemon does not answer."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import logoutd.pam.failsafe as part  # the hook's fail-safe part
import logoutd.pam.hook as hook
from logoutd.api.protocol import encode_error, encode_result
from logoutd.core.hookrecords import parse_hook_record
from logoutd.errors import LimitsExceeded, LogoutdError, NoSuchSession, SessionBusy

HOOK = Path(hook.__file__)
# Modules that cost milliseconds at every login (or pull in the package): never at start-up.
# `os` (~1 ms: stat, posixpath, _collections_abc) only on the fail-safe path.
HEAVY = {"socket", "json", "enum", "selectors", "re", "typing", "logging", "subprocess", "os"}


def _answer_once(path: Path, answer: bytes) -> tuple[threading.Thread, list[bytes]]:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    received: list[bytes] = []

    def serve() -> None:
        with server, server.accept()[0] as conn:
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            received.append(data)
            conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread, received


def _run_hook(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Always with a --runtime-dir of the test's: the default is the machine's /run/logoutd, and
    a hook that gets no answer there tracks its parent (pytest) in the real cgroup tree."""
    assert "--runtime-dir" in args
    return subprocess.run([sys.executable, "-IS", "-X", "importtime", str(HOOK), *args],
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
                          capture_output=True, text=True, timeout=10, check=False)


def _imported(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines()
            if line.startswith("import time:")}


def test_open_session_imports_only_light_stdlib_and_sends_valid_json(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    thread, received = _answer_once(path, b'{"v": 1, "ok": true, "result": {}}\n')
    done = _run_hook({"PAM_TYPE": "open_session", "PAM_USER": "root", "PAM_SERVICE": "su-l",
                      "PAM_TTY": "/dev/pts/3", "PAM_RHOST": 'host "x"\n'},
                     "--socket", str(path), "--runtime-dir", str(tmp_path))
    thread.join(5)
    assert done.returncode == 0
    imported = _imported(done.stderr)
    assert "_socket" in imported and "pwd" in imported
    assert not imported & HEAVY and not [m for m in imported if m.startswith("logoutd")]
    [line] = received
    request = json.loads(line)
    assert request["method"] == "create_session" and request["v"] == 1
    assert request["params"] == {"uid": 0, "leader": os.getpid(), "service": "su-l",
                                 "tty": "pts/3", "remote_host": 'host "x"\n'}


def test_close_session_sends_release(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    thread, received = _answer_once(path, b'{"v": 1, "ok": true, "result": {}}\n')
    done = _run_hook({"PAM_TYPE": "close_session"}, "--socket", str(path),
                     "--runtime-dir", str(tmp_path))
    thread.join(5)
    assert done.returncode == 0 and not _imported(done.stderr) & HEAVY
    assert json.loads(received[0]) == {"v": 1, "method": "release_session",
                                       "params": {"leader": os.getpid()}}


def test_socket_comes_from_the_command_line_never_from_the_environment(tmp_path: Path) -> None:
    """A user's pam_env file could set LOGOUTD_SOCKET to a dead socket: it is ignored; the hook
    talks to RUNTIME_DIR/root.sock, or to --socket."""
    (tmp_path / "run").mkdir()
    _decoy, decoy_received = _answer_once(tmp_path / "decoy.sock", b'{"v": 1, "ok": true}\n')
    thread, received = _answer_once(tmp_path / "run" / "root.sock",
                                    b'{"v": 1, "ok": true, "result": {}}\n')
    done = _run_hook({"PAM_TYPE": "close_session", "LOGOUTD_SOCKET": str(tmp_path / "decoy.sock")},
                     "--runtime-dir", str(tmp_path / "run"))
    thread.join(5)
    assert done.returncode == 0 and len(received) == 1 and not decoy_received
    other, other_received = _answer_once(tmp_path / "other.sock", b'{"v": 1, "ok": true}\n')
    done = _run_hook({"PAM_TYPE": "close_session", "LOGOUTD_SOCKET": str(tmp_path / "decoy.sock")},
                     "--runtime-dir", str(tmp_path / "run"), f"--socket={tmp_path / 'other.sock'}")
    other.join(5)
    assert done.returncode == 0 and len(other_received) == 1 and not decoy_received
    assert hook._options([])[:2] == ("/run/logoutd/root.sock", "/run/logoutd")


# -- the fail-safe path, in-process over a fake /proc, /proc/mounts and cgroup tree ----------


@dataclass
class FailSafe:
    """A runtime dir, a 'cgroup root' (a plain directory), and the leader as a fake /proc shows it."""

    tmp: Path
    run: Path
    root: Path
    leader: int
    warnings: list[str]

    def set_leader(self, cgroup: str = "/", sessionid: str = "4294967295",
                   start: int = 123456) -> None:
        proc = self.tmp / "proc" / str(self.leader)
        proc.mkdir(parents=True, exist_ok=True)
        (proc / "cgroup").write_text(f"0::{cgroup}\n")
        rest = ["1", "2", "3", "34816", "-1"] + ["0"] * 13 + [str(start), "1000", "200"]
        (proc / "stat").write_bytes(f"{self.leader} (su (x) y) S ".encode() + " ".join(rest).encode())
        (proc / "sessionid").write_text(sessionid)

    def open_session(self, *args: str, user: str = "root") -> int:
        env = {"PAM_TYPE": "open_session", "PAM_USER": user, "PAM_SERVICE": "sshd",
               "PAM_TTY": "ssh", "PAM_RHOST": "10.0.0.1"}
        return hook.main(["--runtime-dir", str(self.run), "--socket", str(self.tmp / "none.sock"),
                          *args], env)

    def records(self) -> dict[str, dict[str, object]]:
        hook_dir = self.run / "hook"
        return {p.stem: json.loads(p.read_text()) for p in hook_dir.glob("*.json")} \
            if hook_dir.exists() else {}

    def scope(self, session_id: str, uid: int = 0) -> Path:
        return self.root / f"user.slice/user-{uid}.slice/session-{session_id}.scope"


@pytest.fixture
def failsafe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FailSafe]:
    run, root = tmp_path / "run", tmp_path / "cg"
    run.mkdir()
    root.mkdir()
    (run / "cgroup-root").write_text(f"{root}\n")
    mounts = tmp_path / "mounts"
    mounts.write_text(f"proc /proc proc rw 0 0\ncgroup2 {root} cgroup2 rw,nosuid 0 0\n")
    monkeypatch.setattr(part, "PROC", str(tmp_path / "proc"))
    monkeypatch.setattr(part, "MOUNTS", str(mounts))
    monkeypatch.setattr(part, "SYSTEMD", str(tmp_path / "no-systemd"))
    warnings: list[str] = []
    monkeypatch.setattr(hook, "_warn", warnings.append)
    # The hook compiles failsafe.py afresh; here the imported module is used, with the fakes.
    monkeypatch.setattr(hook, "_fail_safe", lambda run, params, user, why: part.fail_safe(
        run, params, user, why, warnings.append, hook._quote))
    world = FailSafe(tmp_path, run, root, os.getppid(), warnings)
    world.set_leader()
    umask = os.umask(0o022)
    try:
        yield world
    finally:
        os.umask(umask)  # the hook sets the daemon's umask: do not leave it to later tests


def test_unanswered_open_tracks_the_leader_in_a_scope_of_its_own(failsafe: FailSafe) -> None:
    assert failsafe.open_session() == 0
    [(session_id, record)] = failsafe.records().items()
    assert session_id == f"h{failsafe.leader}"
    scope = failsafe.scope(session_id)
    assert (scope / "cgroup.procs").read_text() == str(failsafe.leader)  # the move
    assert record == {
        "v": 1, "id": session_id, "scope": f"user.slice/user-0.slice/session-{session_id}.scope",
        "user": "root", "uid": 0, "leader": failsafe.leader, "leader_start": 123456,
        "service": "sshd", "type": "tty", "remote_host": "10.0.0.1",
        "timestamp": record["timestamp"], "why": f"{failsafe.tmp / 'none.sock'}: No such file or directory",
    }
    assert abs(float(record["timestamp"]) - time.time()) < 60  # type: ignore[arg-type]
    # The daemon's parser accepts what the hook writes: one format, two ends.
    parsed = parse_hook_record(session_id, record)
    assert (parsed.id, parsed.uid, parsed.leader, parsed.leader_start, parsed.request.type) == (
        session_id, 0, failsafe.leader, 123456, "tty")
    [warning] = failsafe.warnings
    assert f"session {session_id} of user root tracked by the hook in {scope}" in warning
    assert "logoutd adopts it when it answers" in warning
    assert not list((failsafe.run / "hook").glob(".*"))  # no temp file left


def test_ids_audit_session_first_then_h_pid_then_with_start_time(failsafe: FailSafe) -> None:
    failsafe.set_leader(sessionid="57")
    failsafe.open_session()
    assert failsafe.scope("57").is_dir() and "57" in failsafe.records()
    # The same audit id again (its scope exists): h<pid>; then h<pid>t<start time>.
    failsafe.open_session()
    failsafe.open_session()
    assert set(failsafe.records()) == {"57", f"h{failsafe.leader}", f"h{failsafe.leader}t123456"}
    # All taken: nothing more is made, the login goes on (fail open, said loudly).
    failsafe.warnings.clear()
    assert failsafe.open_session() == 0
    assert len(failsafe.records()) == 3 and "untracked" in failsafe.warnings[0]


def test_audit_id_of_another_users_session_is_not_taken(failsafe: FailSafe) -> None:
    (failsafe.root / "user.slice/user-1000.slice/session-57.scope").mkdir(parents=True)
    failsafe.set_leader(sessionid="57")
    failsafe.open_session()
    assert set(failsafe.records()) == {f"h{failsafe.leader}"}


def test_leader_already_in_a_user_slice_is_left_alone(failsafe: FailSafe) -> None:
    """su inside a session (or the daemon moved the leader after all): no second scope."""
    failsafe.set_leader(cgroup="/user.slice/user-1000.slice/session-3.scope")
    assert failsafe.open_session() == 0
    assert failsafe.records() == {} and not (failsafe.root / "user.slice").exists()
    assert failsafe.warnings == []


def test_cgroup_root_from_proc_mounts_without_the_daemons_file(failsafe: FailSafe) -> None:
    (failsafe.run / "cgroup-root").unlink()
    failsafe.open_session()
    assert failsafe.scope(f"h{failsafe.leader}").is_dir()


def test_no_fallback_to_the_mount_where_systemd_owns_the_tree(
        failsafe: FailSafe, monkeypatch: pytest.MonkeyPatch) -> None:
    """There the daemon manages a delegated subtree: the top is systemd's, not ours to write."""
    (failsafe.run / "cgroup-root").unlink()
    (failsafe.tmp / "systemd").mkdir()
    monkeypatch.setattr(part, "SYSTEMD", str(failsafe.tmp / "systemd"))
    assert failsafe.open_session() == 0
    assert failsafe.records() == {} and not (failsafe.root / "user.slice").exists()
    assert "systemd owns the cgroup tree" in failsafe.warnings[0]


def test_managed_root_below_the_mount_is_seen_in_proc_cgroup_paths(failsafe: FailSafe) -> None:
    sub = failsafe.root / "logoutd"
    sub.mkdir()
    (failsafe.run / "cgroup-root").write_text(f"{sub}\n")
    failsafe.set_leader(cgroup="/logoutd/user.slice/user-0.slice/session-9.scope")
    failsafe.open_session()
    assert failsafe.records() == {}  # in one of ours already
    failsafe.set_leader(cgroup="/user.slice/user-0.slice/session-9.scope")  # another tree's
    failsafe.open_session()
    assert (sub / f"user.slice/user-0.slice/session-h{failsafe.leader}.scope").is_dir()


def test_unwritable_cgroup_tree_fails_open_loudly(failsafe: FailSafe) -> None:
    blocker = failsafe.tmp / "not-a-dir"
    blocker.write_text("")
    (failsafe.run / "cgroup-root").write_text(f"{blocker}\n")
    assert failsafe.open_session() == 0
    assert failsafe.records() == {}
    [warning] = failsafe.warnings
    assert "login proceeds untracked" in warning


def test_no_record_no_scope(failsafe: FailSafe) -> None:
    """A record that cannot be written: the scope goes too (the daemon would take a scope without
    a record for an orphan and stop it, killing the login)."""
    (failsafe.run / "hook").write_text("")  # a file where the directory should be
    assert failsafe.open_session() == 0
    assert not failsafe.scope(f"h{failsafe.leader}").exists()
    assert "untracked" in failsafe.warnings[0]


def test_timeout_and_silent_close_fail_safe_an_answer_does_not(failsafe: FailSafe) -> None:
    hung = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hung.bind(str(failsafe.tmp / "hung.sock"))
    hung.listen(8)
    with hung:
        t0 = time.monotonic()
        failsafe.open_session("--socket", str(failsafe.tmp / "hung.sock"), "--timeout", "0.2")
        assert time.monotonic() - t0 < 2
    assert "no answer within 0.2 s" in failsafe.warnings[0]
    failsafe.set_leader(sessionid="7")
    thread, _ = _answer_once(failsafe.tmp / "silent.sock", b"")
    failsafe.open_session("--socket", str(failsafe.tmp / "silent.sock"))
    thread.join(5)
    assert "7" in failsafe.records()
    failsafe.set_leader(sessionid="8")
    thread, _ = _answer_once(failsafe.tmp / "ok.sock", b'{"v": 1, "ok": true, "result": {}}\n')
    failsafe.open_session("--socket", str(failsafe.tmp / "ok.sock"))
    thread.join(5)
    assert "8" not in failsafe.records()


def test_close_session_never_fails_safe(failsafe: FailSafe) -> None:
    assert hook.main(["--runtime-dir", str(failsafe.run), "--socket", str(failsafe.tmp / "x")],
                     {"PAM_TYPE": "close_session"}) == 0
    assert failsafe.records() == {} and not (failsafe.root / "user.slice").exists()


def test_fail_safe_part_is_compiled_only_when_needed_and_imports_nothing_heavy(
        tmp_path: Path) -> None:
    """The script as pam_exec runs it, with the real loader: no answer, so it compiles its
    fail-safe part (failsafe.py beside it) and tracks its parent; the cgroup root here is a
    plain directory, so the 'move' writes a file."""
    with open("/proc/self/cgroup") as f:
        if "/user.slice/user-" in f.read():
            pytest.skip("pytest runs inside a user slice: the hook would rightly leave it alone")
    run, root = tmp_path / "run", tmp_path / "cg"
    run.mkdir()
    root.mkdir()
    (run / "cgroup-root").write_text(f"{root}\n")
    done = _run_hook({"PAM_TYPE": "open_session", "PAM_USER": "root", "PAM_SERVICE": "su-l"},
                     "--runtime-dir", str(run), "--socket", str(tmp_path / "none.sock"))
    assert done.returncode == 0, done.stderr
    imported = _imported(done.stderr)
    assert "os" in imported  # the fail-safe path may pay for it; the answered path may not
    assert not imported & (HEAVY - {"os"}) and not [m for m in imported if m.startswith("logoutd")]
    [record] = (run / "hook").glob("*.json")
    scope = root / json.loads(record.read_text())["scope"]
    assert (scope / "cgroup.procs").read_text() == str(os.getpid())


def test_installed_hook_carries_its_fail_safe_part(tmp_path: Path) -> None:
    from logoutd.pam.install import fail_safe_path, install_hook

    dest = tmp_path / "bin" / "logoutd-pam"
    install_hook(dest)
    part_path = fail_safe_path(dest)
    assert part_path.name == "logoutd-pam-failsafe.py"
    assert part_path.read_text() == Path(part.__file__).read_text()
    # The stub carries the source as a string literal (its fallback) and names the part there.
    assert f'\\nFAIL_SAFE = "{part_path.name}"  #' in dest.read_text()
    assert dest.read_text().startswith("#!/usr/bin/python3 -IS\n")


def test_installed_hook_runs_its_compiled_code_and_falls_back_to_its_source(
        tmp_path: Path) -> None:
    """The stub runs <hook>.code when its magic and stamp match; a stale or missing one is
    ignored and the carried source runs instead (a login is never left without the hook)."""
    import marshal

    from logoutd.pam.install import code_path, install_hook

    dest = tmp_path / "bin" / "logoutd-pam"
    install_hook(dest, sys.executable)
    code = code_path(dest)
    header = code.read_bytes()[:16]
    assert marshal.loads(code.read_bytes()[16:]).co_filename == str(dest)

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(dest), "--runtime-dir", str(tmp_path / "run")],
                              env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                              timeout=10, check=False)

    marker = marshal.dumps(compile('print("from the code file")', str(dest), "exec"))
    code.write_bytes(header + marker)
    assert run().stdout == "from the code file\n"
    code.write_bytes(header[:4] + bytes(12) + marker)  # another install's stamp
    done = run()
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done
    code.unlink()
    done = run()
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done


def test_scope_removed_before_the_move_is_made_again(
        failsafe: FailSafe, monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon starting between the hook's mkdir and its record removes the scope as an empty
    orphan; the hook makes it again and moves the leader; the daemon adopts the record."""
    write = part._write_record

    def write_then_lose_scope(run: str, session_id: str, record: dict[str, object],
                              quote: Callable[[str], str]) -> str:
        path = write(run, session_id, record, quote)  # type: ignore[arg-type]
        os.rmdir(failsafe.root / str(record["scope"]))
        return path

    monkeypatch.setattr(part, "_write_record", write_then_lose_scope)
    failsafe.open_session()
    scope = failsafe.scope(f"h{failsafe.leader}")
    assert (scope / "cgroup.procs").read_text() == str(failsafe.leader)
    assert "tracked by the hook" in failsafe.warnings[0]


# -- what the hook makes of the daemon's answer -----------------------------------------------

REFUSED = LimitsExceeded('Too many sessions (SessionsMax=2); "ok": true in a message is text.')


def _hook_answered(tmp_path: Path, answer: bytes, monkeypatch: pytest.MonkeyPatch,
                   kind: str = "close_session") -> list[str]:
    """Run the hook in-process against a socket that gives `answer`; what it logged."""
    warnings: list[str] = []
    monkeypatch.setattr(hook, "_warn", warnings.append)
    path = tmp_path / f"answer-{len(list(tmp_path.iterdir()))}.sock"
    thread, received = _answer_once(path, answer)
    env = {"PAM_TYPE": kind, "PAM_USER": "root", "PAM_SERVICE": "su-l"}
    assert hook.main(["--runtime-dir", str(tmp_path), "--socket", str(path)], env) == 0
    thread.join(5)
    assert len(received) == 1
    return warnings


@pytest.mark.parametrize("kind", ["open_session", "close_session"])
def test_a_refused_request_is_logged_as_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                kind: str) -> None:
    """With the daemon's code and message: an answer is parsed, not searched for `"ok": true`."""
    [warning] = _hook_answered(tmp_path, encode_error(REFUSED), monkeypatch, kind)
    assert warning.startswith(f"{kind} for leader {os.getppid()} refused by logoutd: ")
    assert '"limits_exceeded"' in warning and "SessionsMax=2" in warning
    assert not (tmp_path / "hook").exists()  # an answer, even a refusal, never fails safe


def test_success_and_the_expected_refusals_log_nothing(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for answer in (encode_result({}), encode_result({"id": "7", "note": '"ok": false'}),
                   encode_error(SessionBusy("su inside a session")),
                   encode_error(NoSuchSession("no session with leader 1"))):
        assert _hook_answered(tmp_path, answer, monkeypatch) == [], answer


@pytest.mark.parametrize("answer", [
    b'{"v": 1, "ok": true}',  # no newline: not a whole answer
    b'{"ok": true}\n', b'{"v": 1, "ok": "true", "result": {}}\n', b"[]\n", b"\n",
    b'{"v": 1, "ok": false, "error": {"message": "x"}}\n',
    b'{"v": 1, "ok": true, "result": {}}\n{"v": 1, "ok": true, "result": {}}\n',
    b'{"v": 1, "ok": true, "result": {}} trailing\n',
])
def test_an_answer_of_another_shape_is_logged_as_not_understood(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: bytes) -> None:
    [warning] = _hook_answered(tmp_path, answer, monkeypatch)
    assert "logoutd's answer is not understood" in warning, warning


def test_the_outcome_matches_what_the_daemon_encodes() -> None:
    """The hook matches answers byte for byte: api/protocol.py's encoding must keep that shape."""
    assert hook._outcome(encode_result({"session": {"id": "1"}})) == (True, b"")
    assert hook._outcome(encode_result({}, request_id=3)) == (True, b"")
    for error in (REFUSED, SessionBusy("x"), NoSuchSession("y"), LogoutdError("z")):
        assert hook._outcome(encode_error(error)) == (False, error.code.encode())


def test_a_refusal_reaches_the_log_of_the_hook_as_pam_exec_runs_it(tmp_path: Path) -> None:
    """The script itself (syslog, and stderr with --debug), no monkeypatching."""
    path = tmp_path / "api.sock"
    thread, _ = _answer_once(path, encode_error(REFUSED))
    done = _run_hook({"PAM_TYPE": "close_session"}, "--socket", str(path),
                     "--runtime-dir", str(tmp_path), "--debug")
    thread.join(5)
    assert done.returncode == 0
    [line] = [x for x in done.stderr.splitlines() if x.startswith("logoutd-pam:")]
    assert "refused by logoutd" in line and "SessionsMax=2" in line, done.stderr
