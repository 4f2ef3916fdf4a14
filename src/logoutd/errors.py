"""The domain errors. Each has a stable `code` used on the wire and an exit status for the CLI."""

from __future__ import annotations


class LogoutdError(Exception):
    """Base of every error logoutd reports to a caller."""

    code = "failed"
    exit_status = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAvailable(LogoutdError):
    """A verb or method a later release fills in (exit status 3, LSB's "unimplemented")."""

    code = "not_available"
    exit_status = 3


class InvalidArgument(LogoutdError):
    code = "invalid_argument"
    exit_status = 2


class AccessDenied(LogoutdError):
    code = "access_denied"
    exit_status = 4


class NoSuchSession(LogoutdError):
    code = "no_such_session"
    exit_status = 5


class NoSuchUser(LogoutdError):
    code = "no_such_user"
    exit_status = 6


class SessionBusy(LogoutdError):
    """The leader already runs inside a user slice (su/sudo within a session)."""

    code = "session_busy"
    exit_status = 7


class LimitsExceeded(LogoutdError):
    code = "limits_exceeded"
    exit_status = 8


class ProcessGone(LogoutdError):
    """A pid named in a request has exited (or was reused) — a race, not a crash."""

    code = "no_such_process"
    exit_status = 9


class NotRunning(LogoutdError):
    """The daemon could not be reached."""

    code = "not_running"
    exit_status = 10


class ProtocolError(LogoutdError):
    code = "protocol_error"
    exit_status = 11


class CgroupError(LogoutdError):
    """The cgroup tree refused an operation (missing mount, EBUSY, permissions)."""

    code = "cgroup_error"
    exit_status = 12


class InternalError(LogoutdError):
    """A bug in the daemon met by one request: that request fails, the daemon goes on."""

    code = "internal_error"
    exit_status = 13


class NoSuchUnit(LogoutdError):
    """No unit (or no finished unit's result) of that name is known."""

    code = "no_such_unit"
    exit_status = 14


class ConfigIgnored(LogoutdError):
    """The configuration was read, but some of its lines were ignored (the valid ones apply)."""

    code = "config_ignored"
    exit_status = 16


class UnitExists(LogoutdError):
    """A unit of that name already runs, or its cgroup is still there."""

    code = "unit_exists"
    exit_status = 15


ERRORS_BY_CODE: dict[str, type[LogoutdError]] = {
    cls.code: cls
    for cls in (
        LogoutdError,
        NotAvailable,
        InvalidArgument,
        AccessDenied,
        NoSuchSession,
        NoSuchUser,
        SessionBusy,
        LimitsExceeded,
        ProcessGone,
        NotRunning,
        ProtocolError,
        CgroupError,
        InternalError,
        NoSuchUnit,
        UnitExists,
    )
}


def error_from_wire(code: str, message: str) -> LogoutdError:
    """Rebuild the domain error a server answered with (unknown codes map to the base class)."""
    return ERRORS_BY_CODE.get(code, LogoutdError)(message)


def already_running(where: str, holder: str, fix: str) -> str:
    """The one line every "another instance has it" refusal prints (runtime dir, D-Bus name)."""
    return f"{where} is already taken by {holder}: refusing to start. {fix}"
