"""What the API shows of a session, a user and a unit: typed, and shared by every transport.

The socket answers with `json()` (field order and names are the wire format that
tests/contract pins; `class_` is `class` there); login1 reads the same fields as D-Bus
properties. A renamed field thus fails type checking in both, not a client.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from logoutd.core.sessions import Session
from logoutd.core.unit import Unit
from logoutd.core.users import User

_WIRE_NAMES = {"class_": "class"}  # Python keywords, spelled as on the wire


class _View:
    def json(self) -> dict[str, Any]:
        """The view as the socket sends it: its fields in order, tuples as lists."""
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[_WIRE_NAMES.get(f.name, f.name)] = list(value) if isinstance(value, tuple) \
                else value
        return out


@dataclass(frozen=True)
class SessionView(_View):
    id: str
    uid: int
    user: str
    leader: int | None
    service: str
    tty: str
    remote_host: str
    remote_user: str
    type: str
    class_: str
    state: str
    scope: str  # below the managed root
    timestamp: float
    stop_cause: str | None
    kill_reason: str | None
    stop_action: str | None

    @classmethod
    def of(cls, s: Session) -> SessionView:
        return cls(
            id=s.id, uid=s.user.uid, user=s.user.name, leader=s.leader_pid or None,
            service=s.service, tty=s.tty, remote_host=s.remote_host, remote_user=s.remote_user,
            type=s.type, class_=s.class_, state=str(s.state), scope=s.scope,
            timestamp=s.timestamp, stop_cause=str(s.stop_cause) if s.stop_cause else None,
            kill_reason=s.decision.reason if s.decision else None,
            stop_action=str(s.decision.action) if s.decision else None,
        )


@dataclass(frozen=True)
class UserView(_View):
    uid: int
    gid: int
    name: str
    state: str
    sessions: tuple[str, ...]  # ids, sorted
    linger: bool
    runtime_path: str
    slice: str  # below the managed root
    timestamp: float

    @classmethod
    def of(cls, u: User) -> UserView:
        return cls(uid=u.uid, gid=u.account.gid, name=u.name, state=str(u.state),
                   sessions=tuple(sorted(u.sessions)), linger=u.lingering,
                   runtime_path=u.runtime_path, slice=u.slice, timestamp=u.timestamp)


@dataclass(frozen=True)
class UnitView(_View):
    name: str
    kind: str
    uid: int
    user: str
    state: str
    pids: tuple[int, ...]  # sorted
    main_pid: int | None
    created: float
    cgroup: str  # below the managed root

    @classmethod
    def of(cls, u: Unit) -> UnitView:
        pids = sorted(u.ctx.ports.cgroups.pids(u.cgroup)) if not u.finalized else []
        return cls(name=u.name, kind=str(u.kind), uid=u.user.uid, user=u.user.name,
                   state=str(u.state), pids=tuple(pids),
                   main_pid=u.main.pid if u.main is not None else None, created=u.created,
                   cgroup=u.cgroup)
