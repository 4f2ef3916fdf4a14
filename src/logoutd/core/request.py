"""What a session is created from: the PAM hook's request, login1's CreateSession, a hook record."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SessionRequest:
    """What create_session needs; the leader has already been checked by the caller's edge."""

    uid: int
    leader: int
    service: str = ""
    type: str = ""
    class_: str = ""
    tty: str = ""
    display: str = ""
    remote_host: str = ""
    remote_user: str = ""
