"""The cgroup names of slices, scopes and services (systemd's layout), and their parsing.

Paths are relative to the managed root, as the cgroup port takes them:
user.slice/user-UID.slice/session-ID.scope for a session, …/user@UID.service for the user's
units, …/user@UID.service/app.slice/NAME for one unit. (The PAM hook, stdlib only, keeps its
own copy of the first two in pam/failsafe.py.)
"""

from __future__ import annotations

import re

USERS = "user.slice"
SESSION_ID = r"[A-Za-z0-9]+"
_SLICE = re.compile(r"user-(\d+)\.slice")
_SCOPE = re.compile(rf"session-({SESSION_ID})\.scope")
_SLICE_IN_PATH = re.compile(r"/user\.slice/user-(\d+)\.slice(/|$)")
_SCOPE_IN_PATH = re.compile(rf"/session-({SESSION_ID})\.scope(/|$)")


def user_slice(uid: int) -> str:
    return f"{USERS}/user-{uid}.slice"


def user_service(uid: int) -> str:
    """user@UID.service: the parent of every unit of the user."""
    return f"{user_slice(uid)}/user@{uid}.service"


def session_scope(uid: int, session_id: str) -> str:
    return f"{user_slice(uid)}/session-{session_id}.scope"


def unit_cgroup(uid: int, unit: str) -> str:
    """A unit's cgroup, `unit` its full name (with .scope or .service)."""
    return f"{user_service(uid)}/app.slice/{unit}"


def slice_uid(name: str) -> int | None:
    """The uid of a user slice's own name ("user-1000.slice"), else None."""
    match = _SLICE.fullmatch(name)
    return int(match.group(1)) if match else None


def scope_session(name: str) -> str | None:
    """The session id of a scope's own name ("session-c1.scope"), else None."""
    match = _SCOPE.fullmatch(name)
    return match.group(1) if match else None


def uid_in_path(path: str) -> int | None:
    """The uid whose slice holds a cgroup path below the root ("/user.slice/user-1000.slice/…")."""
    match = _SLICE_IN_PATH.search(path)
    return int(match.group(1)) if match else None


def session_in_path(path: str) -> str | None:
    """The session id whose scope holds a cgroup path below the root, else None."""
    match = _SCOPE_IN_PATH.search(path)
    return match.group(1) if match else None
