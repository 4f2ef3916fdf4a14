"""A session's tty from utmp, as logind 252's manager_read_utmp() takes it.

sshd opens the PAM session before it has a pty, so PAM gives no tty (PAM_TTY=ssh, which
pam_systemd and the PAM hook both send as no tty; "ssh" itself is taken as none too, from any
other client). sshd then writes a utmp USER_PROCESS entry for the pty, with the pid of the
session's leader. That entry's line becomes the session's tty,
which idle detection (StopIdleSessionSec=) needs. As logind: a tty PAM gave is never replaced,
one taken from utmp is never changed, and a session whose utmp entries disagree (ssh
connection sharing) loses its tty for good.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from logoutd.core.sessions import Session

log = logging.getLogger("logoutd")

PSEUDO_TTYS = ("", "ssh")  # what PAM_TTY holds when the login has no terminal (yet)
FROM_UTMP = "utmp"
INCONSISTENT = "utmp-inconsistent"


class Sessions(Protocol):
    def session_by_pid(self, pid: int) -> Session | None: ...


def apply_utmp(manager: Sessions, entries: Iterable[tuple[int, str]]) -> list[Session]:
    """Give sessions their tty from utmp's (pid, line) entries; the sessions changed."""
    changed: list[Session] = []
    for pid, line in entries:
        session = manager.session_by_pid(pid)
        if session is None or session.finalized:
            continue
        if session.tty_from == FROM_UTMP and session.tty != line:
            log.info('Session "%s": utmp gives tty %s besides %s (a shared ssh connection?); '
                     "dropping its tty.", session.id, line, session.tty)
            session.tty, session.tty_from = "", INCONSISTENT
        elif session.tty_from or session.tty not in PSEUDO_TTYS:
            continue
        else:
            log.info('Session "%s": tty %s from utmp.', session.id, line)
            session.tty, session.tty_from = line, FROM_UTMP
        session.save()
        if session not in changed:
            changed.append(session)
    return changed
