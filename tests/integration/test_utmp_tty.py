"""An ssh login with a pty gets its tty from utmp, so StopIdleSessionSec= stops it when idle.

sshd opens the PAM session before it allocates the pty: PAM_TTY is "ssh", which the hook and
pam_systemd both send as no tty (TTY empty in list-sessions, never idle). Once the pty exists,
sshd writes a utmp USER_PROCESS entry for it (glibc, at its compiled path /var/run/utmp =
/run/utmp). Here sshd runs in a private mount namespace with a directory of the test bound
over /run, holding an empty utmp; logoutd reads that file (`--utmp`). The machine's own /run
is never written.
"""

from __future__ import annotations

import pytest

from logoutd.system.utmp import user_processes
from tests.integration.harness.checks import wait_session_removed
from tests.integration.harness.ctl import ctl
from tests.integration.harness.login import Login
from tests.integration.harness.procs import descendants, wait_for
from tests.integration.harness.sshd import private_run

IDLE = "[Login]\nStopIdleSessionSec=3\n"
HOLD = 'echo "TTY $(tty)"; echo "PID shell $$"; exec sleep 1000'


@pytest.mark.parametrize("stack", ["hook", "pam_systemd"])
def test_idle_ssh_pty_login_gets_its_tty_from_utmp_and_is_stopped(env, user, stack, request):
    bus = None
    if stack == "pam_systemd":
        bus = request.getfixturevalue("bus")
        pam = request.getfixturevalue("systemd_pam")
    else:
        pam = request.getfixturevalue("pam")
    daemon = env.daemon(IDLE, start=False, dbus=bus)
    run = private_run(env.tmp)
    daemon.utmp = run / "utmp"
    daemon.start()
    sshd = env.sshd(pam, bus, run_dir=run)
    login = Login(sshd.argv(user, HOLD, tty=True), f"ssh -tt {user.name}")
    sshd.register(login)
    tty = login.wait_line("TTY ").split()[1].strip().removeprefix("/dev/")
    assert tty.startswith("pts/"), login.report()

    # sshd's utmp entry: its pid is the session's leader (sshd's privileged monitor for this
    # connection, which ran the PAM stack); logoutd took the line from it.
    session = daemon.wait_session(user.name, timeout=15, tty=tty)
    entries = dict(user_processes(run / "utmp"))
    [ut_pid] = [pid for pid, line in entries.items() if line == tty]
    assert ut_pid == session["leader"] and ut_pid in descendants(sshd.proc.pid), (ut_pid, session)
    assert f'Session "{session["id"]}": tty {tty} from utmp.' in daemon.log()
    listed = ctl(env, "list-sessions")
    assert any(tty in row.split() for row in listed.lines), listed.out
    shown = ctl(env, "show-session", session["id"], "-p", "TTY", "--value")
    assert shown.out.strip() == tty, shown
    if bus is not None:  # login1's TTY property, as loginctl reads it
        got = bus.busctl("get-property", "org.freedesktop.login1",
                         f"/org/freedesktop/login1/session/{_label(session['id'])}",
                         "org.freedesktop.login1.Session", "TTY")
        assert got.stdout.strip() == f's "{tty}"', got

    # Nothing is typed and the shell only sleeps: idle after StopIdleSessionSec=3.
    wait_session_removed(env, daemon, session, timeout=40)
    assert f'Session "{session["id"]}" of user "{user.name}" is idle, stopping.' in daemon.log()
    wait_for(lambda: login.popen.poll() is not None, 20, "the ssh client to exit",
             details=login.report)


def _label(session_id: str) -> str:
    from logoutd.login1.labels import session_path
    return session_path(session_id).rsplit("/", 1)[1]
