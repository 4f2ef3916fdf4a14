"""Sessions the PAM hook started itself while logoutd did not answer (DESIGN §10): its records."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from logoutd.core.cgroupnames import SESSION_ID, session_scope
from logoutd.core.request import SessionRequest

HOOK_KIND = "hook"  # the state store's kind: RUNTIME_DIR/hook/ID.json, written by the PAM hook
_ID = re.compile(SESSION_ID)


@dataclass(frozen=True)
class HookRecord:
    """What the hook knew at session open: what create_session gets, plus the id it claimed."""

    id: str
    leader_start: int  # clock ticks since boot: the leader is pinned only if this matches
    timestamp: float
    request: SessionRequest

    @property
    def uid(self) -> int:
        return self.request.uid

    @property
    def leader(self) -> int:
        return self.request.leader

    @property
    def scope(self) -> str:
        return session_scope(self.uid, self.id)


def parse_hook_record(key: str, raw: dict[str, Any]) -> HookRecord:
    """Check a record field by field; ValueError names what is wrong."""
    session_id = _str(raw, "id")
    if not _ID.fullmatch(session_id) or session_id != key:
        raise ValueError(f"bad session id {session_id!r} in {key}.json")
    record = HookRecord(
        id=session_id, leader_start=_int(raw, "leader_start"), timestamp=_float(raw, "timestamp"),
        request=SessionRequest(
            uid=_int(raw, "uid"), leader=_int(raw, "leader"), service=_str(raw, "service", ""),
            type=_str(raw, "type", ""), class_=_str(raw, "class", ""), tty=_str(raw, "tty", ""),
            display=_str(raw, "display", ""), remote_host=_str(raw, "remote_host", ""),
            remote_user=_str(raw, "remote_user", "")),
    )
    if record.uid < 0 or record.leader <= 1:
        raise ValueError(f"bad uid {record.uid} or leader {record.leader}")
    if raw.get("scope") != record.scope:
        raise ValueError(f"scope {raw.get('scope')!r} does not follow the naming rules")
    return record


def _str(raw: dict[str, Any], name: str, default: str | None = None) -> str:
    value = raw.get(name, default)
    if not isinstance(value, str):
        raise ValueError(f"'{name}' is missing or not a string")
    return value


def _int(raw: dict[str, Any], name: str) -> int:
    value = raw.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"'{name}' is missing or not an integer")
    return value


def _float(raw: dict[str, Any], name: str) -> float:
    value = raw.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"'{name}' is missing or not a number")
    return float(value)
