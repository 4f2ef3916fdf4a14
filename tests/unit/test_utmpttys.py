"""A session's tty from utmp (core/utmpttys.py), on the pure core: logind 252's rules."""

from __future__ import annotations

from logoutd.config.model import Config
from logoutd.core.request import SessionRequest
from logoutd.core.sessions import Session, StopCause
from logoutd.core.utmpttys import apply_utmp
from tests.unit.conftest import Core, make_core


def _session(core: Core, tty: str = "") -> tuple[Session, int]:
    """A session and the pid of a process in it (sshd writes the shell's pid into utmp)."""
    leader = core.world.spawn(uid=0)
    session = core.manager.create_session(SessionRequest(uid=1000, leader=leader.pid,
                                                         service="sshd", tty=tty))
    shell = core.world.spawn(uid=1000, cgroup=core.world.abs(session.scope))
    return session, shell.pid


def test_a_session_without_tty_takes_its_entrys_line_and_saves_it() -> None:
    core = make_core()
    session, pid = _session(core)
    other = core.world.spawn(uid=1000)  # in no session
    assert apply_utmp(core.manager, [(other.pid, "pts/7"), (pid, "pts/3")]) == [session]
    assert (session.tty, session.tty_from) == ("pts/3", "utmp")
    assert core.store.data[("sessions", session.id)]["tty"] == "pts/3"
    assert core.store.data[("sessions", session.id)]["tty_from"] == "utmp"
    assert apply_utmp(core.manager, [(pid, "pts/3")]) == []  # read again: nothing changes


def test_pam_tty_ssh_is_a_pseudo_name_and_is_replaced() -> None:
    core = make_core()
    session, pid = _session(core, tty="ssh")
    apply_utmp(core.manager, [(pid, "pts/4")])
    assert session.tty == "pts/4"


def test_a_real_tty_from_pam_is_never_replaced() -> None:
    core = make_core()
    session, pid = _session(core, tty="/dev/tty2")
    assert apply_utmp(core.manager, [(pid, "pts/4")]) == []
    assert (session.tty, session.tty_from) == ("tty2", "")


def test_entries_that_disagree_drop_the_tty_for_good() -> None:
    """ssh connection sharing: two ptys for one PAM session; logind drops the tty."""
    core = make_core()
    session, pid = _session(core)
    apply_utmp(core.manager, [(pid, "pts/1")])
    apply_utmp(core.manager, [(pid, "pts/1"), (pid, "pts/2")])
    assert (session.tty, session.tty_from) == ("", "utmp-inconsistent")
    apply_utmp(core.manager, [(pid, "pts/1")])
    assert session.tty == ""


def test_the_tty_survives_a_restart() -> None:
    core = make_core()
    session, pid = _session(core)
    apply_utmp(core.manager, [(pid, "pts/5")])
    again = Session.from_record(core.manager.ctx, session.user,
                                core.store.data[("sessions", session.id)])
    assert (again.tty, again.tty_from) == ("pts/5", "utmp")


def test_idle_detection_works_once_utmp_gave_the_tty() -> None:
    """StopIdleSessionSec= for an ssh pty login: no tty at PAM time, pts/N from utmp later."""
    core = make_core(Config(stop_idle_session_sec=60, idle_action_sec=1800))
    core.processes.tty_atimes = {"pts/1": core.clock.now()}  # type: ignore[attr-defined]
    session, pid = _session(core, tty="ssh")
    core.clock.advance(61)
    assert not session.stopping  # no tty known yet: never idle
    apply_utmp(core.manager, [(pid, "pts/1")])
    core.clock.advance(61)
    assert session.stop_cause is StopCause.IDLE
