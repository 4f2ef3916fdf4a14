"""The cgroup names of slices, scopes and units, and their parsing, in one place."""

from __future__ import annotations

from logoutd.core import cgroupnames as names


def test_names_follow_systemds_layout() -> None:
    assert names.user_slice(1000) == "user.slice/user-1000.slice"
    assert names.user_service(1000) == "user.slice/user-1000.slice/user@1000.service"
    assert names.session_scope(1000, "c7") == "user.slice/user-1000.slice/session-c7.scope"
    assert names.unit_cgroup(1000, "run-u3.service") == (
        "user.slice/user-1000.slice/user@1000.service/app.slice/run-u3.service")


def test_parsing_reads_back_what_naming_writes() -> None:
    assert names.slice_uid("user-1000.slice") == 1000
    assert names.scope_session("session-c7.scope") == "c7"
    path = "/" + names.session_scope(1000, "c7") + "/sub"
    assert names.uid_in_path(path) == 1000 and names.session_in_path(path) == "c7"


def test_parsing_refuses_other_names() -> None:
    assert names.slice_uid("user-x.slice") is None and names.slice_uid("user-1.slice.d") is None
    assert names.scope_session("session-a/b.scope") is None
    assert names.scope_session("autokeep-12.scope") is None
    assert names.uid_in_path("/system.slice/user-1000.slice") is None
    assert names.session_in_path("/user.slice/user-1000.slice/user@1000.service") is None
