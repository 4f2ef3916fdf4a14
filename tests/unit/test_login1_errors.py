"""The domain errors' names on the bus: logind's and systemd's, never a bare Failed for a known one."""

from __future__ import annotations

import pytest

from logoutd.errors import ERRORS_BY_CODE, LogoutdError, NoSuchUnit, UnitExists

wire = pytest.importorskip("logoutd.login1.wire", reason="dbus-fast is not installed")


@pytest.mark.parametrize(("error", "name"), [
    (NoSuchUnit("No unit 'x' known."), "org.freedesktop.systemd1.NoSuchUnit"),
    (UnitExists("Unit x.scope already exists."), "org.freedesktop.systemd1.UnitExists"),
    (LogoutdError("Reload failed"), "org.freedesktop.DBus.Error.Failed"),
])
def test_error_names(error: LogoutdError, name: str) -> None:
    assert wire.error_name(error) == name


def test_every_code_a_caller_can_get_has_a_name() -> None:
    """Only the base error, and the ones that never reach the bus (client side, protocol,
    cgroup and internal errors, which logind too reports as Failed), map to Failed."""
    failed = {code for code in ERRORS_BY_CODE
              if wire.error_name(ERRORS_BY_CODE[code]("x")) == "org.freedesktop.DBus.Error.Failed"}
    assert failed == {"failed", "not_running", "protocol_error", "cgroup_error", "internal_error"}
