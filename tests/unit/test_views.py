"""The typed views: their JSON is the wire format the socket sent as hand-built dicts before."""

from __future__ import annotations

import json
from typing import Any

from logoutd.api.views import SessionView, UnitView, UserView
from logoutd.core.request import SessionRequest
from logoutd.core.sessions import Session
from logoutd.core.unit import Unit
from logoutd.core.users import User
from tests.unit.conftest import Core, make_core


def _old_session_view(s: Session) -> dict[str, Any]:
    """api/service.py's session_view before the views were typed (the pinned wire format)."""
    return {
        "id": s.id, "uid": s.user.uid, "user": s.user.name, "leader": s.leader_pid or None,
        "service": s.service, "tty": s.tty, "remote_host": s.remote_host,
        "remote_user": s.remote_user, "type": s.type, "class": s.class_, "state": str(s.state),
        "scope": s.scope, "timestamp": s.timestamp,
        "stop_cause": str(s.stop_cause) if s.stop_cause else None,
        "kill_reason": s.decision.reason if s.decision else None,
        "stop_action": str(s.decision.action) if s.decision else None,
    }


def _old_user_view(u: User) -> dict[str, Any]:
    return {"uid": u.uid, "gid": u.account.gid, "name": u.name, "state": str(u.state),
            "sessions": sorted(u.sessions), "linger": u.lingering,
            "runtime_path": u.runtime_path, "slice": u.slice, "timestamp": u.timestamp}


def _old_unit_view(u: Unit) -> dict[str, Any]:
    return {"name": u.name, "kind": str(u.kind), "uid": u.user.uid, "user": u.user.name,
            "state": str(u.state),
            "pids": sorted(u.ctx.ports.cgroups.pids(u.cgroup)) if not u.finalized else [],
            "main_pid": u.main.pid if u.main is not None else None, "created": u.created,
            "cgroup": u.cgroup}


def _same_bytes(new: dict[str, Any], old: dict[str, Any]) -> None:
    assert json.dumps(new) == json.dumps(old)


def _world() -> tuple[Core, list[Session]]:
    core = make_core()
    sessions = []
    for uid, tty in ((1000, "pts/1"), (1000, ""), (1001, "pts/2")):
        leader = core.world.spawn(uid=0)
        sessions.append(core.manager.create_session(SessionRequest(
            uid=uid, leader=leader.pid, service="sshd", tty=tty, remote_host="10.0.0.9",
            class_="user")))
    core.world.exit(sessions[1].leader_pid)  # one stopping: stop cause and decision set
    return core, sessions


def test_session_and_user_views_are_the_old_dicts_byte_for_byte() -> None:
    core, sessions = _world()
    assert sessions[1].stop_cause is not None
    for s in core.manager.sessions.values():
        _same_bytes(SessionView.of(s).json(), _old_session_view(s))
    for u in core.manager.users.values():
        _same_bytes(UserView.of(u).json(), _old_user_view(u))


def test_unit_view_is_the_old_dict_byte_for_byte() -> None:
    core, sessions = _world()
    shell = core.world.spawn(uid=1000, cgroup=core.world.procs[sessions[0].leader_pid].cgroup)
    unit = core.manager.units.start_scope(1000, shell.pid, "job")
    _same_bytes(UnitView.of(unit).json(), _old_unit_view(unit))
    unit.finalized = True
    _same_bytes(UnitView.of(unit).json(), _old_unit_view(unit))
