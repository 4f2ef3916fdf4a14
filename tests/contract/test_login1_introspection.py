"""The introspection XML logoutd announces on org.freedesktop.login1, pinned.

It is generated from the same tables that serve the calls, so a change to a method, signal or
property type shows up here first. Names and types are checked against logind v252's
(../shared/reference/logind.md §4, dbus-login1-notes.md): stock pam_systemd and loginctl read
variants with the exact signature they expect. To accept an intended change:
LOGOUTD_UPDATE_CONTRACT=1 pytest tests/contract/test_login1_introspection.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from logoutd.login1 import objects

PINNED = Path(__file__).with_name("login1")
CASES = {
    "manager.xml": (objects.MANAGER, ["session", "user"]),
    "session.xml": (objects.SESSION, []),
    "user.xml": (objects.USER, []),
}

# logind v252's types for what loginctl 252 and pam_systemd 252 read.
LOGIND_SESSION = {
    "Id": "s", "User": "(uo)", "Name": "s", "Timestamp": "t", "TimestampMonotonic": "t",
    "VTNr": "u", "Seat": "(so)", "TTY": "s", "Display": "s", "Remote": "b", "RemoteHost": "s",
    "RemoteUser": "s", "Service": "s", "Desktop": "s", "Scope": "s", "Leader": "u",
    "Audit": "u", "Type": "s", "Class": "s", "Active": "b", "State": "s", "IdleHint": "b",
    "IdleSinceHint": "t", "IdleSinceHintMonotonic": "t", "LockedHint": "b",
}
LOGIND_USER = {
    "UID": "u", "GID": "u", "Name": "s", "Timestamp": "t", "TimestampMonotonic": "t",
    "RuntimePath": "s", "Service": "s", "Slice": "s", "Display": "(so)", "State": "s",
    "Sessions": "a(so)", "IdleHint": "b", "IdleSinceHint": "t", "IdleSinceHintMonotonic": "t",
    "Linger": "b",
}
LOGIND_MANAGER_METHODS = {
    "GetSession": ("s", "o"), "GetSessionByPID": ("u", "o"), "GetUser": ("u", "o"),
    "GetUserByPID": ("u", "o"), "ListSessions": ("", "a(susso)"), "ListUsers": ("", "a(uso)"),
    "ListSeats": ("", "a(so)"), "CreateSession": ("uusssssussbssa(sv)", "soshusub"),
    # logind 255 (src/login/logind-dbus.c, method_create_session_pidfd): the leader as a pidfd
    "CreateSessionWithPIDFD": ("uhsssssussbssta(sv)", "soshusub"),
    "ReleaseSession": ("s", ""), "TerminateSession": ("s", ""), "TerminateUser": ("u", ""),
    "KillSession": ("ssi", ""), "KillUser": ("ui", ""), "SetUserLinger": ("ubb", ""),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_introspection_is_pinned(name: str) -> None:
    spec, children = CASES[name]
    xml = objects.introspect(spec, children)
    path = PINNED / name
    if os.environ.get("LOGOUTD_UPDATE_CONTRACT"):
        path.write_text(xml)
    assert xml == path.read_text(), f"{name} changed; see this module's docstring"


def test_property_types_are_loginds() -> None:
    assert {p.name: p.type for p in objects.SESSION.properties} == LOGIND_SESSION
    assert {p.name: p.type for p in objects.USER.properties} == LOGIND_USER


def test_manager_method_signatures_are_loginds() -> None:
    assert {m.name: (m.in_signature, m.out_signature) for m in objects.MANAGER.methods} == \
        LOGIND_MANAGER_METHODS
    assert {m.name: m.in_signature for m in objects.MANAGER.signals} == {
        "SessionNew": "so", "SessionRemoved": "so", "UserNew": "uo", "UserRemoved": "uo"}
    assert {m.name: m.in_signature for m in objects.SESSION.methods} == {
        "Terminate": "", "Kill": "si"}
    assert {m.name: m.in_signature for m in objects.USER.methods} == {
        "Terminate": "", "Kill": "i"}
