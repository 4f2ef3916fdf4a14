"""sd-login's calls from inside a real ssh login, against the files logoutd writes.

The probe (harness/sdprobe.py) runs in the login's own process tree as the user, in a user and
mount namespace of its own (`unshare -r -m`) where the daemon's --sd-login-dir is bind-mounted
on /run/systemd: the machine's /run/systemd is never read or written. The cgroup root is
named `logoutd-test-<hex>.slice`, which libsystemd's path parser skips like any slice.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness.debs import unpacked
from tests.integration.harness.env import Env
from tests.integration.harness.login import READY
from tests.integration.harness.procs import wait_for
from tests.integration.harness.users import TestUser
from tests.integration.test_login1_polkit import start_polkitd

HERE = Path(__file__).resolve().parent
PROBE = HERE / "harness" / "sdprobe.py"
LIBSYSTEMD = Path("/usr/lib/x86_64-linux-gnu/libsystemd.so.0")
EXPORT = "[Logoutd]\nSdLoginFiles=yes\n"


def probe_command(env: Env, sd_login_dir: Path, library: Path, user: TestUser,
                  session: str = "") -> str:
    """The ssh command: a private /run (tmpfs) with the daemon's files (if any) as /run/systemd."""
    probe = env.tmp / "sdprobe.py"
    if not probe.exists():
        probe.write_text(PROBE.read_text())
        probe.chmod(0o644)
    files = shlex.quote(str(sd_login_dir))
    inner = (f"mount -t tmpfs none /run && mkdir /run/systemd && "
             f"{{ ! [ -d {files} ] || mount --bind {files} /run/systemd; }} && "
             f"exec /usr/bin/python3 {probe} {library} {user.uid} {session}")
    return f"unshare -r -m sh -c {shlex.quote(inner)}"


def run_probe(env: Env, pam: Any, user: TestUser, sd_login_dir: Path,
              library: Path = LIBSYSTEMD, session: str = "",
              bus: Any = None) -> dict[str, list[Any]]:
    done = env.sshd(pam, bus).run(user, probe_command(env, sd_login_dir, library, user, session),
                             timeout=60)
    assert done.returncode == 0, done
    answers: dict[str, list[Any]] = json.loads(done.stdout.splitlines()[-1])
    print(f"\nsd-login {library.name}: {json.dumps(answers)}")
    return answers


def values(answers: dict[str, list[Any]]) -> dict[str, Any]:
    return {name: answer[1] for name, answer in answers.items()}


def only_session(daemon: Any, user: TestUser) -> dict[str, Any]:
    sessions = daemon.sessions(user.name)
    assert len(sessions) == 1, sessions
    return sessions[0]


@pytest.fixture
def libelogind(slice_env: Env) -> Path:
    return unpacked_libelogind()  # after slice_env: its cleanup outlives the use


@pytest.fixture
def libelogind_env(env: Env) -> Path:
    return unpacked_libelogind()


def unpacked_libelogind() -> Path:
    """Debian's libelogind0, unpacked where the test user can read it (it conflicts with
    libsystemd0 as a package)."""
    root = unpacked("libelogind0")
    if isinstance(root, str):
        pytest.skip(root)
    found = sorted(root.rglob("libelogind.so.0"))
    assert found, "no libelogind.so.0 in the package"
    return found[0]


def ssh_login(env: Env, daemon: Any, exported: bool = True) -> tuple[TestUser, Any, str]:
    """A new test user's ssh login (a sleep) through the hook: the user, the PAM service and
    the session id, once the session is there (and, `exported`, its sd-login file)."""
    user = env.user()
    pam = env.pam()
    login = env.login("ssh", pam, user, "echo READY; exec sleep 600")
    login.wait_line("READY")
    sid = wait_for(lambda: (daemon.sessions(user.name) or [{}])[0].get("id"), 20, "the session")
    if exported:
        wait_for((daemon.sd_login_dir / "sessions" / sid).exists, 10, "the session's file")
    return user, pam, sid


def logged_in(sid: str, user, pam) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """What every sd-login call answers for a process of `user`'s one active session `sid`."""
    return {
        "sd_pid_get_session": sid,
        "sd_pid_get_owner_uid": user.uid,
        "sd_pid_get_unit": f"session-{sid}.scope",
        "sd_session_get_state": "active",
        "sd_session_is_active": True,
        "sd_session_get_uid": user.uid,
        "sd_session_get_type": "tty",
        "sd_session_get_class": "user",
        "sd_session_get_service": pam.name,
        "sd_uid_get_state": "active",
        "sd_get_sessions": [sid],
        "sd_get_uids": [user.uid],
    }


@pytest.mark.parametrize("via", ["hook", "pam_systemd"])
def test_sd_login_answers_from_inside_an_ssh_login(slice_env, via):
    """Through the PAM hook, and through stock pam_systemd.so and `logoutd --dbus`."""
    env = slice_env
    bus = env.bus() if via == "pam_systemd" else None
    daemon = env.daemon(EXPORT, dbus=bus)
    user = env.user()
    pam = env.pam(hook=bus is None, systemd=bus is not None)
    answers = values(run_probe(env, pam, user, daemon.sd_login_dir, bus=bus))
    sid = answers["sd_pid_get_session"]
    assert isinstance(sid, str) and not sid.startswith("-"), answers
    assert answers == logged_in(sid, user, pam)
    # At logout the session's file goes, and the user's with the user (UserStopDelaySec=0).
    files = daemon.sd_login_dir
    wait_for(lambda: not any((files / "sessions").iterdir())
             and not any((files / "users").iterdir()), 30, "sd-login files removed at logout",
             details=lambda: f"{list((files / 'sessions').iterdir())} "
                             f"{list((files / 'users').iterdir())}")


def test_sd_login_files_are_reconciled_after_a_restart(slice_env):
    env = slice_env
    daemon = env.daemon(EXPORT)
    user, _pam, sid = ssh_login(env, daemon)
    files = daemon.sd_login_dir
    session_file = files / "sessions" / sid
    wait_for(session_file.exists, 10, "the session's file")
    text = session_file.read_text()
    assert f"UID={user.uid}\n" in text and "STATE=active\n" in text, text
    assert f"SCOPE=session-{sid}.scope\n" in text and "LEADER=" in text, text
    assert f"\nSESSIONS={sid}\n" in (files / "users" / str(user.uid)).read_text()
    assert oct(session_file.stat().st_mode & 0o777) == "0o644"

    daemon.kill()
    session_file.unlink()
    (files / "sessions" / "c999999").write_text("STATE=active\n")
    (files / "users" / "4242424").write_text("STATE=active\n")
    daemon.start()
    wait_for(lambda: session_file.exists() and not (files / "sessions" / "c999999").exists()
             and not (files / "users" / "4242424").exists(), 20,
             "missing file written, stale ones removed",
             details=lambda: f"{sorted(p.name for p in files.rglob('*'))}")
    assert "STATE=active\n" in session_file.read_text()


def test_libelogind_reads_the_files_but_not_the_path(slice_env, libelogind):
    env = slice_env
    daemon = env.daemon(EXPORT)
    user, pam, sid = ssh_login(env, daemon)
    answers = values(run_probe(env, pam, user, daemon.sd_login_dir, libelogind, sid))
    # elogind's parser takes the first path component as the session id: not logoutd's layout.
    assert answers["sd_pid_get_session"] != sid, answers
    assert answers["sd_session_get_state"] == "active", answers
    assert answers["sd_session_get_uid"] == user.uid, answers
    assert answers["sd_uid_get_state"] == "active", answers
    assert sid in answers["sd_get_sessions"], answers


def test_without_the_export_sd_login_sees_no_session(env):
    """What main did before: no files; a root that is not a slice is not parsed, and said so."""
    daemon = env.daemon("[Logoutd]\nSdLoginFiles=no\n")
    user, pam, sid = ssh_login(env, daemon, exported=False)
    answers = values(run_probe(env, pam, user, daemon.sd_login_dir, session=sid))
    assert answers["sd_pid_get_session"] == "-ENODATA", answers
    assert answers["sd_session_get_state"] == "-ENXIO", answers
    assert answers["sd_uid_get_state"] == "offline", answers
    assert answers["sd_get_sessions"] == [] and answers["sd_get_uids"] == [], answers
    assert not daemon.sd_login_dir.exists()
    log = daemon.log()
    assert f"its component '{env.cgroup_root.name}' is not a *.slice name" in log, log
    assert "SdLoginFiles=no" in log, log


def probe_in_cgroup_namespace(env: Env, daemon: Any, user: TestUser, sid: str,
                              library: Path = LIBSYSTEMD) -> dict[str, Any]:
    """The probe in a cgroup namespace rooted at the test's root, where a process sees the
    default root's paths (/user.slice/…): entered from that root, then joined to the login's
    scope, dropped to the user. /sys/fs/cgroup is the cgroup2 mount there (a unified host)."""
    scope = env.scope_dir(f"user.slice/user-{user.uid}.slice/session-{sid}.scope")
    probe = env.tmp / "sdprobe.py"
    probe.write_text(PROBE.read_text())
    probe.chmod(0o644)
    files = shlex.quote(str(daemon.sd_login_dir))
    inner = (f"echo $$ > {scope}/cgroup.procs && mount -t tmpfs none /run && "
             f"mkdir /run/systemd && {{ ! [ -d {files} ] || mount --bind {files} /run/systemd; }} && "
             f"mount --bind {env.mount} /sys/fs/cgroup && "
             f"exec setpriv --reuid {user.uid} --regid {user.gid} --init-groups "
             f"/usr/bin/python3 {probe} {library} {user.uid} {sid}")
    outer = (f"echo $$ > {env.cgroup_root}/cgroup.procs && "
             f"exec unshare -C -m --propagation private sh -c {shlex.quote(inner)}")
    done = subprocess.run(["sh", "-c", outer], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done
    answers = values(json.loads(done.stdout.splitlines()[-1]))
    print(f"\nsd-login {library.name} in a cgroup namespace: {json.dumps(answers)}")
    return answers


def test_the_default_root_layout_in_a_cgroup_namespace(env):
    """logoutd's default root is the cgroup2 mount: /user.slice/user-UID.slice/session-ID.scope."""
    daemon = env.daemon(EXPORT)
    user, pam, sid = ssh_login(env, daemon)
    answers = probe_in_cgroup_namespace(env, daemon, user, sid)
    assert answers == logged_in(sid, user, pam)


def test_libelogind_takes_the_first_path_component_for_the_session(env, libelogind_env):
    """elogind's flat layout is /<ID>: under logoutd's it finds a session named user.slice."""
    daemon = env.daemon(EXPORT)
    user, _pam, sid = ssh_login(env, daemon)
    answers = probe_in_cgroup_namespace(env, daemon, user, sid, libelogind_env)
    assert answers["sd_pid_get_session"] == "user.slice", answers
    assert answers["sd_pid_get_owner_uid"] == "-ENODATA", answers  # no sessions/user.slice
    assert answers["sd_session_get_state"] == "active", answers
    assert answers["sd_uid_get_state"] == "active", answers


POLKITD = Path("/usr/lib/polkit-1/polkitd")
PKCHECK = "pkcheck"
# Logs what polkitd learnt from sd-login about the subject; allows only a subject in an active
# session (login1's policy asks an administrator for set-user-linger: no agent here, so "no").
RULE = """\
polkit.addRule(function(action, subject) {
    if (action.id != "org.freedesktop.login1.set-user-linger") return polkit.Result.NOT_HANDLED;
    polkit.log("logoutd-test subject session='" + subject.session + "' local=" + subject.local
               + " active=" + subject.active);
    if (subject.session && subject.active) return polkit.Result.YES;
    return polkit.Result.NOT_HANDLED;
});
"""


def start_private_polkitd(env: Env, bus: Any, sd_login_dir: Path) -> Path:
    """polkitd on the test's bus, in a mount namespace of its own: the daemon's sd-login files
    as /run/systemd and a rules.d holding RULE only. Returns its log."""
    if not POLKITD.exists() or shutil.which(PKCHECK) is None:
        pytest.skip("polkitd or pkcheck not installed")
    rules = env.tmp / "rules.d"
    rules.mkdir(mode=0o755)
    (rules / "50-logoutd-test.rules").write_text(RULE)
    (rules / "50-logoutd-test.rules").chmod(0o644)
    files = shlex.quote(str(sd_login_dir))
    inner = (f"mount -t tmpfs none /run && mkdir /run/systemd && "
             f"{{ ! [ -d {files} ] || mount --bind {files} /run/systemd; }} && "
             f"mount --bind {rules} /etc/polkit-1/rules.d && exec {POLKITD}")
    start_polkitd(env, bus, ["unshare", "-m", "--propagation", "private", "sh", "-c", inner])
    return env.tmp / "polkitd.log"


def pkcheck(bus: Any, pid: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PKCHECK, "--action-id", "org.freedesktop.login1.set-user-linger",
                           "--process", str(pid)], env={**os.environ, **bus.env()},
                          capture_output=True, text=True, timeout=30)


def polkit_sees(env: Env, config: str) -> tuple[str, str, subprocess.CompletedProcess[str]]:
    """pkcheck for a process of an ssh login: (the session id, polkitd's rule log, the result)."""
    bus = env.bus()
    daemon = env.daemon(config)
    user = env.user()
    pam = env.pam()
    login = env.login("ssh", pam, user, f"sleep 600 & echo PID sleeper $!; echo {READY}; wait")
    sleeper = login.wait_ready()["sleeper"]
    sid = wait_for(lambda: (daemon.sessions(user.name) or [{}])[0].get("id"), 20, "the session")
    log = start_private_polkitd(env, bus, daemon.sd_login_dir)
    checked = pkcheck(bus, sleeper.pid)
    seen = wait_for(lambda: [line for line in log.read_text(errors="replace").splitlines()
                             if "logoutd-test subject" in line], 10, "polkitd's rule log",
                    details=lambda: log.read_text(errors="replace"))
    print(f"\npkcheck: rc {checked.returncode} {checked.stdout.strip()} "
          f"{checked.stderr.strip()}; polkitd: {seen[-1]}")
    return sid, seen[-1], checked


def test_polkit_sees_the_session_of_a_process_in_an_ssh_login(slice_env):
    sid, seen, checked = polkit_sees(slice_env, EXPORT)
    assert f"session='{sid}' local=false active=true" in seen, seen
    assert checked.returncode == 0, checked


def test_polkit_sees_no_session_without_files_or_a_parsable_root(env):
    """main before: no files, a root sd-login cannot parse; an administrator is asked for."""
    _, seen, checked = polkit_sees(env, "[Logoutd]\nSdLoginFiles=no\n")
    assert "session='null' local=false active=false" in seen, seen
    assert checked.returncode != 0, checked
