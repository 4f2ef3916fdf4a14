"""The one declarative schema of logind.conf as logoutd reads it: section, key, parser, field,
doc — one row per key — and how values are rendered back (show-config). The parsers of single
values, and the printers that must parse back to the same value, live in values.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from logoutd.config.model import Config, TmpfsSize
from logoutd.config.values import (
    WHITESPACE,
    absolute_path,
    format_timespan,
    format_tmpfs_size,
    group_name,
    parse_bool,
    parse_handle_action,
    parse_kill_mode,
    parse_n_autovts,
    parse_optional_path,
    parse_removed,
    parse_sd_login_files,
    parse_sec,
    parse_sec_fix_0,
    parse_tmpfs_size,
    parse_uint64,
    parse_unsigned,
    user_name,
    user_or_group,
)

# --- the table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One row: where the key lives, how its value parses, which Config field it sets, what it does.

    `field` None: a logind key logoutd accepts (and checks) but does not use.
    `is_list`: `parse` takes one word; assignments append, an empty one resets to the default.
    """

    section: str
    key: str
    parse: Callable[[str], object]
    field: str | None
    doc: str
    is_list: bool = False

    def default(self) -> object:
        """The compiled-in default of the field (None for keys logoutd does not use)."""
        return getattr(Config(), self.field) if self.field is not None else None


_IGNORED = "logind's; accepted and checked, not used by logoutd."


def _logind_only(key: str, parse: Callable[[str], object]) -> Option:
    return Option("Login", key, parse, None, _IGNORED)


OPTIONS: tuple[Option, ...] = (
    Option("Login", "KillUserProcesses", parse_kill_mode, "kill_user_processes",
           "Kill a session's processes when it ends: yes, no, or permissive (record only)."),
    Option("Login", "KillOnlyUsers", user_name, "kill_only_users",
           "If not empty, only these users' sessions are killed at logout.", is_list=True),
    Option("Login", "KillExcludeUsers", user_name, "kill_exclude_users",
           "Users whose sessions are never killed; while unset, root is excluded.", is_list=True),
    Option("Login", "UserStopDelaySec", parse_sec, "user_stop_delay_sec",
           "How long a user's manager and slice outlive the user's last session."),
    Option("Login", "StopIdleSessionSec", parse_sec_fix_0, "stop_idle_session_sec",
           "Stop a session idle this long (forced, kills); 0 or infinity: never."),
    Option("Login", "IdleActionSec", parse_sec, "idle_action_sec",
           "logind's IdleAction= delay; also caps the idle threshold of StopIdleSessionSec=."),
    Option("Login", "RemoveIPC", parse_bool, "remove_ipc",
           "Remove a stopped user's SysV and POSIX IPC objects (UIDs above the system range)."),
    Option("Login", "SessionsMax", parse_uint64, "sessions_max",
           "Most sessions that may exist at once; more are refused."),
    Option("Login", "RuntimeDirectorySize", parse_tmpfs_size, "runtime_directory_size",
           "Size of each /run/user/UID tmpfs: bytes (K, M, G, ...) or a percentage of RAM."),
    _logind_only("NAutoVTs", parse_n_autovts),
    _logind_only("ReserveVT", parse_unsigned),
    *(_logind_only(key, parse_sec) for key in ("InhibitDelayMaxSec", "HoldoffTimeoutSec")),
    *(_logind_only(f"Handle{key}", parse_handle_action) for key in (
        "PowerKey", "PowerKeyLongPress", "RebootKey", "RebootKeyLongPress", "SuspendKey",
        "SuspendKeyLongPress", "HibernateKey", "HibernateKeyLongPress", "LidSwitch",
        "LidSwitchExternalPower", "LidSwitchDocked")),
    _logind_only("IdleAction", parse_handle_action),
    *(_logind_only(f"{key}IgnoreInhibited", parse_bool) for key in (
        "PowerKey", "SuspendKey", "HibernateKey", "LidSwitch", "RebootKey")),
    *(_logind_only(key, parse_uint64) for key in ("RuntimeDirectoryInodesMax", "InhibitorsMax")),
    Option("Login", "UserTasksMax", parse_removed("UserTasksMax"), None,
           "Removed from logind; use TasksMax= in user-.slice.d/ drop-ins."),
    Option("Logoutd", "SessionStopTimeoutSec", parse_sec, "session_stop_timeout_sec",
           "After SIGTERM and SIGHUP, how long a session's processes get before SIGKILL."),
    Option("Logoutd", "UserStopTimeoutSec", parse_sec, "user_stop_timeout_sec",
           "After SIGTERM, how long a stopping user's units get before SIGKILL."),
    Option("Logoutd", "ReleaseTimeoutSec", parse_sec, "release_timeout_sec",
           "After PAM closes a session, how long its leader may live before the session stops."),
    Option("Logoutd", "AuditLog", parse_optional_path("AuditLog"), "audit_log",
           "Append the JSON-lines audit log to this absolute path; empty: no audit file."),
    Option("Policy", "KeepAllowUsers", user_or_group, "keep_allow_users",
           "Users and @groups who may keep processes after logout; unset: everyone.",
           is_list=True),
    Option("Policy", "KeepAllowGroups", group_name, "keep_allow_groups",
           "Groups whose members may also keep processes after logout.", is_list=True),
    Option("Policy", "LingerSelfAllow", user_or_group, "linger_self_allow",
           "Users and @groups who may turn on linger for themselves; unset: everyone.",
           is_list=True),
    Option("Policy", "AutoKeep", absolute_path("AutoKeep"), "auto_keep",
           "Executables whose processes move to a scope at logout instead of dying "
           "(for users allowed to keep processes).", is_list=True),
    Option("Logoutd", "SdLoginFiles", parse_sd_login_files, "sd_login_files",
           "Write sd-login's session and user files (auto: unless logind, elogind or systemd "
           "as PID 1 runs); read at start."),
    Option("Policy", "KeepTmux", parse_bool, "keep_tmux",
           "Shell integration: a tmux that starts a new server runs in a scope of its own."),
    Option("Policy", "KeepScreen", parse_bool, "keep_screen",
           "Shell integration: a screen that starts a new session runs in a scope of its own."),
    Option("Policy", "KeepNohup", parse_bool, "keep_nohup",
           "Shell integration: `nohup CMD` runs in a scope of its own (opt-in)."),
    Option("Policy", "KeepUserWhileUnits", parse_bool, "keep_user_while_units",
           "A user who has units (kept scopes, services) is not stopped for lack of sessions "
           "until they end."),
    Option("Policy", "KeepUserMaxSec", parse_sec, "keep_user_max_sec",
           "With KeepUserWhileUnits=yes: stop the user anyway this long after the last "
           "session; infinity: never."),
)  # fmt: skip

SECTIONS: tuple[str, ...] = ("Login", "Logoutd", "Policy")

_BY_KEY: dict[tuple[str, str], Option] = {(o.section, o.key): o for o in OPTIONS}


def lookup(section: str, key: str) -> Option | None:
    """The row for `key` in `section` (both case-sensitive), or None."""
    return _BY_KEY.get((section, key))


# --- rendering (show-config) ---------------------------------------------------------------


def _quote_word(word: str) -> str:
    if word and not any(c in WHITESPACE + "'\"" for c in word):
        return word
    return f"'{word}'" if "'" not in word else f'"{word}"'


def render_value(value: object) -> str:
    """A field's value in the file's syntax (every float field is a time span)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format_timespan(value)
    if isinstance(value, TmpfsSize):
        return format_tmpfs_size(value)
    if isinstance(value, tuple):
        return " ".join(_quote_word(str(word)) for word in value)
    return str(value)
