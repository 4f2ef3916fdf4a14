"""The one declarative schema of logind.conf as logoutd reads it: section, key, parser, field, doc.

Value parsers copy systemd v252 (parse_boolean(), parse_time(), parse_size(), safe_atou64(),
config_parse_strv(), config_parse_tmpfs_size(), …). A parser returns the value or raises
ValueError whose text is the whole warning, worded as logind words it.
"""

from __future__ import annotations

import errno
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from logoutd.config.model import Config, KillMode

WHITESPACE = " \t\n\r"  # systemd's WHITESPACE: what strstrip() and word splitting skip

_USEC_PER_SEC = 1_000_000
_USEC_INFINITY = 2**64 - 1
_UINT64_MAX = 2**64 - 1
_UINT_MAX = 2**32 - 1
_INT_MAX = 2**31 - 1
_DIGITS = re.compile(r"[0-9]+")
_SIGNED_DIGITS = re.compile(r"[+-]?[0-9]+")


class _Errno(Exception):
    """A systemd helper's negative errno, for messages that print it with %m."""

    def __init__(self, code: int) -> None:
        super().__init__(os.strerror(code))
        self.errno = code


def _skip_ws(text: str, i: int = 0) -> int:
    while i < len(text) and text[i] in WHITESPACE:
        i += 1
    return i


# --- booleans ------------------------------------------------------------------------------

_TRUE = frozenset({"1", "yes", "y", "true", "t", "on"})
_FALSE = frozenset({"0", "no", "n", "false", "f", "off"})


def _boolean(text: str) -> bool | None:
    """parse_boolean(): ASCII case-insensitive, None if it is not a boolean."""
    word = text.lower() if text.isascii() else text
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    return None


def parse_bool(text: str) -> bool:
    """config_parse_bool()."""
    value = _boolean(text)
    if value is None:
        raise ValueError(f"Failed to parse boolean value, ignoring: {text}")
    return value


def parse_kill_mode(text: str) -> KillMode:
    """KillUserProcesses=: a boolean as logind takes it, or "permissive"."""
    value = _boolean(text)
    if value is not None:
        return KillMode.YES if value else KillMode.NO
    if text.isascii() and text.lower() == KillMode.PERMISSIVE:
        return KillMode.PERMISSIVE
    raise ValueError(f"Failed to parse boolean value, ignoring: {text}")


# --- time spans ----------------------------------------------------------------------------

# extract_multiplier(): the first prefix that matches wins, so the order matters.
_TIME_UNITS: tuple[tuple[str, int], ...] = (
    ("seconds", _USEC_PER_SEC),
    ("second", _USEC_PER_SEC),
    ("sec", _USEC_PER_SEC),
    ("s", _USEC_PER_SEC),
    ("minutes", 60 * _USEC_PER_SEC),
    ("minute", 60 * _USEC_PER_SEC),
    ("min", 60 * _USEC_PER_SEC),
    ("months", 2_629_800 * _USEC_PER_SEC),
    ("month", 2_629_800 * _USEC_PER_SEC),
    ("M", 2_629_800 * _USEC_PER_SEC),
    ("msec", 1000),
    ("ms", 1000),
    ("m", 60 * _USEC_PER_SEC),
    ("hours", 3600 * _USEC_PER_SEC),
    ("hour", 3600 * _USEC_PER_SEC),
    ("hr", 3600 * _USEC_PER_SEC),
    ("h", 3600 * _USEC_PER_SEC),
    ("days", 86400 * _USEC_PER_SEC),
    ("day", 86400 * _USEC_PER_SEC),
    ("d", 86400 * _USEC_PER_SEC),
    ("weeks", 604800 * _USEC_PER_SEC),
    ("week", 604800 * _USEC_PER_SEC),
    ("w", 604800 * _USEC_PER_SEC),
    ("years", 31_557_600 * _USEC_PER_SEC),
    ("year", 31_557_600 * _USEC_PER_SEC),
    ("y", 31_557_600 * _USEC_PER_SEC),
    ("usec", 1),
    ("us", 1),
    ("\u00b5s", 1),
)


def _parse_usec(text: str) -> int:
    """parse_time(text, USEC_PER_SEC) of v252: microseconds, _USEC_INFINITY for "infinity"."""
    n = len(text)
    p = _skip_ws(text)
    if text.startswith("infinity", p):
        if _skip_ws(text, p + len("infinity")) != n:
            raise _Errno(errno.EINVAL)
        return _USEC_INFINITY
    total = 0
    something = False
    while True:
        p = _skip_ws(text, p)
        if p == n:
            if not something:
                raise _Errno(errno.EINVAL)
            return total
        if text[p] == "-":  # refuse "-0" too
            raise _Errno(errno.ERANGE)
        number = _SIGNED_DIGITS.match(text, p)  # strtoll()
        whole, e = (int(number.group()), number.end()) if number else (0, p)
        if whole > 2**63 - 1:
            raise _Errno(errno.ERANGE)
        if e < n and text[e] == ".":
            digits = _DIGITS.match(text, e + 1)
            p = digits.end() if digits else e + 1
        elif e == p:
            raise _Errno(errno.EINVAL)
        else:
            p = e
        unit_at = _skip_ws(text, p)
        multiplier = _USEC_PER_SEC
        s = unit_at
        for suffix, usec in _TIME_UNITS:
            if text.startswith(suffix, unit_at):
                multiplier, s = usec, unit_at + len(suffix)
                break
        if s == p and s != n:  # refuse "12.34.56", accept "12.34 .56" and "12.34s.56"
            raise _Errno(errno.EINVAL)
        p = s
        if whole >= _USEC_INFINITY // multiplier:
            raise _Errno(errno.ERANGE)
        k = whole * multiplier
        if k >= _USEC_INFINITY - total:
            raise _Errno(errno.ERANGE)
        total += k
        something = True
        if e < n and text[e] == ".":
            m = multiplier // 10
            b = e + 1
            while b < n and text[b] in "0123456789":
                k = int(text[b]) * m
                if k >= _USEC_INFINITY - total:
                    raise _Errno(errno.ERANGE)
                total += k
                b += 1
                m //= 10
            if b == e + 1:  # refuse "3.sec", "0.-0"
                raise _Errno(errno.EINVAL)


def _seconds(usec: int) -> float:
    return math.inf if usec == _USEC_INFINITY else usec / _USEC_PER_SEC


def parse_sec(text: str) -> float:
    """config_parse_sec(): a time span in seconds; no unit means seconds."""
    try:
        return _seconds(_parse_usec(text))
    except _Errno:
        raise ValueError(f"Failed to parse sec value, ignoring: {text}") from None


def parse_sec_fix_0(text: str) -> float:
    """config_parse_sec_fix_0(): like parse_sec(), but 0 means infinity."""
    try:
        usec = _parse_usec(text)
    except _Errno:
        raise ValueError(f"Failed to parse time value, ignoring: {text}") from None
    return math.inf if usec == 0 else _seconds(usec)


# --- integers and sizes --------------------------------------------------------------------


def _strtou(text: str, limit: int) -> int:
    """safe_atou()/safe_atou64(): C's base-0 strtoul() plus "0b"/"0o"; "-" is out of range."""
    s = text[_skip_ws(text) :]
    base = 0
    if s[:2] in ("0b", "0B"):
        base, s = 2, s[2:]
    elif s[:2] in ("0o", "0O"):
        base, s = 8, s[2:]
    s = s.lstrip(WHITESPACE + "\v\f")  # strtoul() skips isspace() itself
    negative = s[:1] == "-"
    if s[:1] in ("+", "-"):
        s = s[1:]
    if base == 0:
        if s[:2] in ("0x", "0X") and s[2:3] and s[2] in "0123456789abcdefABCDEF":
            base, s = 16, s[2:]
        else:
            base = 8 if s[:1] == "0" else 10
    digits = "0123456789abcdef"[:base]
    if not s or any(c not in digits and c not in digits.upper() for c in s):
        raise _Errno(errno.EINVAL)
    value = int(s, base)
    if value > limit or (negative and value != 0):
        raise _Errno(errno.ERANGE)
    return value


def parse_uint64(text: str) -> int:
    """config_parse_uint64()."""
    try:
        return _strtou(text, _UINT64_MAX)
    except _Errno:
        raise ValueError(f"Failed to parse uint64 value, ignoring: {text}") from None


def parse_unsigned(text: str) -> int:
    """config_parse_unsigned()."""
    try:
        return _strtou(text, _UINT_MAX)
    except _Errno:
        raise ValueError(f"Failed to parse unsigned value, ignoring: {text}") from None


def parse_n_autovts(text: str) -> int:
    """logind's config_parse_n_autovts()."""
    try:
        value = _strtou(text, _UINT_MAX)
    except _Errno:
        raise ValueError(f"Failed to parse number of autovts, ignoring: {text}") from None
    if value > 15:
        raise ValueError(f"A maximum of 15 autovts are supported, ignoring: {text}")
    return value


_IEC_SUFFIXES: tuple[tuple[str, int], ...] = (
    ("E", 1024**6),
    ("P", 1024**5),
    ("T", 1024**4),
    ("G", 1024**3),
    ("M", 1024**2),
    ("K", 1024),
    ("B", 1),
    ("", 1),
)


def _parse_size(text: str) -> int:
    """parse_size(text, 1024): "1G 512M", "1.5G", units in decreasing order."""
    n = len(text)
    p = 0
    total = 0
    start = 0
    while True:
        p = _skip_ws(text, p)
        number = _SIGNED_DIGITS.match(text, p)
        if number is None:
            raise _Errno(errno.EINVAL)
        if text[p] == "-":
            raise _Errno(errno.ERANGE)
        whole = int(number.group())
        if whole > _UINT64_MAX:
            raise _Errno(errno.ERANGE)
        e = number.end()
        frac = 0.0
        if e < n and text[e] == ".":
            e += 1
            digits = _DIGITS.match(text, e)
            if digits:  # "10.M" is valid
                frac = float(int(digits.group()))
                for _ in digits.group():
                    frac /= 10
                e = digits.end()
        e = _skip_ws(text, e)
        for i in range(start, len(_IEC_SUFFIXES)):
            suffix, factor = _IEC_SUFFIXES[i]
            if text.startswith(suffix, e):
                break
        else:
            raise _Errno(errno.EINVAL)
        if whole + (frac > 0) > _UINT64_MAX // factor:
            raise _Errno(errno.ERANGE)
        part = whole * factor + int(frac * factor)
        if part > _UINT64_MAX - total:
            raise _Errno(errno.ERANGE)
        total += part
        p = e + len(suffix)
        start = i + 1
        if p >= n:
            return total


def _strtoi(text: str) -> int:
    """safe_atoi(): a signed int, same number syntax as _strtou()."""
    s = text.lstrip(WHITESPACE)
    negative = s[:1] == "-"
    value = _strtou(s[1:] if negative else s, _INT_MAX + 1)
    value = -value if negative else value
    if not -_INT_MAX - 1 <= value <= _INT_MAX:
        raise _Errno(errno.ERANGE)
    return value


# symbol, decimal places allowed, permyriad per unit
_PERMYRIAD_FORMS = (("%", 2, 100), ("\u2030", 1, 10), ("\u2031", 0, 1))


def _parse_permyriad(text: str) -> int:
    """parse_permyriad(): "N%", "N.N%", "N.NN%", "N‰", "N.N‰", "N‱", at most 100%."""
    form = next((form for form in _PERMYRIAD_FORMS if text.endswith(form[0])), None)
    if form is None:
        raise _Errno(errno.EINVAL)
    symbol, places, scale = form
    number = text[: -len(symbol)]
    fraction = 0
    if "." in number and places:
        number, _, decimals = number.partition(".")
        if not 1 <= len(decimals) <= places or not decimals.isascii() or not decimals.isdigit():
            raise _Errno(errno.EINVAL)
        fraction = int(decimals.ljust(places, "0"))
    value = _strtoi(number)
    if value < 0 or value > (_INT_MAX - fraction) // scale:
        raise _Errno(errno.ERANGE)
    permyriad = value * scale + fraction
    if permyriad > 10000:
        raise _Errno(errno.ERANGE)
    return permyriad


def parse_tmpfs_size(text: str) -> str:
    """config_parse_tmpfs_size(): a percentage of RAM or bytes (K, M, G, …); kept as text."""
    try:
        if _parse_permyriad(text) > 0:
            return text
    except _Errno:
        pass
    try:
        if _parse_size(text) <= 0:
            raise _Errno(errno.ERANGE)
    except _Errno as err:
        raise ValueError(f"Failed to parse size value '{text}', ignoring: {err}") from None
    return text


def tmpfs_size_bytes(text: str, physical_memory: int, page_size: int = 4096) -> int:
    """What logind mounts for RuntimeDirectorySize=`text` (already validated): bytes, page-aligned.

    The kernel's size= takes neither "1.5G", "10.5%", "‰" nor "1G 512M"; this number it takes.
    """
    try:
        permyriad = _parse_permyriad(text)
    except _Errno:
        permyriad = 0
    if permyriad == 10000:
        return physical_memory
    if permyriad > 0:  # physical_memory_scale(): whole pages, rounded down
        return physical_memory // page_size * permyriad // 10000 * page_size
    return -(-_parse_size(text) // page_size) * page_size  # PAGE_ALIGN()


# --- enums, paths, names -------------------------------------------------------------------

HANDLE_ACTIONS = frozenset(
    {
        "ignore", "poweroff", "reboot", "halt", "kexec", "suspend", "hibernate", "hybrid-sleep",
        "suspend-then-hibernate", "factory-reset", "lock",
    }
)  # fmt: skip


def parse_handle_action(text: str) -> str:
    """logind's config_parse_handle_action() (v252's table)."""
    if text not in HANDLE_ACTIONS:
        raise ValueError(f"Failed to parse handle action setting, ignoring: {text}")
    return text


def parse_removed(key: str) -> Callable[[str], object]:
    """A key logind still accepts but no longer supports (config_parse_compat_user_tasks_max())."""

    def parse(text: str) -> object:
        raise ValueError(f"Support for option {key}= has been removed.")

    return parse


def _simplified_absolute_path(key: str, text: str) -> str:
    """path_simplify_and_warn(PATH_CHECK_ABSOLUTE): absolute, no "..", "//" and "/./" folded."""
    if not text.startswith("/"):
        raise ValueError(f"{key}= path is not absolute, ignoring: {text}")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts or "\0" in text:
        raise ValueError(f"{key}= path is not normalized, ignoring: {text}")
    return "/" + "/".join(parts)


def parse_optional_path(key: str) -> Callable[[str], object]:
    """config_parse_path(): an absolute path, or empty for none."""

    def parse(text: str) -> str | None:
        return _simplified_absolute_path(key, text) if text else None

    return parse


def absolute_path(key: str) -> Callable[[str], object]:
    """One entry of a list of absolute paths."""

    def parse(text: str) -> str:
        return _simplified_absolute_path(key, text)

    return parse


def _valid_name(name: str) -> bool:
    """valid_user_group_name(VALID_USER_RELAX), and no "/" (names become file names here)."""
    return not (
        not name
        or name != name.strip(" ")
        or any(ord(c) < 0x20 or c == "\x7f" for c in name)
        or ":" in name
        or "/" in name
        or name in (".", "..")
    )


def user_name(text: str) -> str:
    """One user name."""
    if not _valid_name(text):
        raise ValueError(f'Invalid user name "{text}", ignoring.')
    return text


def group_name(text: str) -> str:
    """One group name, written "name" or "@name"; stored without the "@"."""
    name = text.removeprefix("@")
    if not _valid_name(name):
        raise ValueError(f'Invalid group name "{text}", ignoring.')
    return name


def user_or_group(text: str) -> str:
    """A user name, or "@group"; stored as written."""
    if text.startswith("@"):
        if not _valid_name(text[1:]):
            raise ValueError(f'Invalid group name "{text}", ignoring.')
        return text
    return user_name(text)


def split_words(text: str) -> tuple[list[str], bool]:
    """extract_first_word(EXTRACT_UNQUOTE|EXTRACT_RETAIN_ESCAPE) until the end.

    Words are separated by whitespace; ' and " quote (also mid-word) and are removed;
    backslashes are literal. Returns the words and whether an unbalanced quote stopped
    the split (the words before it are still returned, as config_parse_strv() keeps them).
    """
    words: list[str] = []
    i, n = 0, len(text)
    while True:
        i = _skip_ws(text, i)
        if i >= n:
            return words, False
        word: list[str] = []
        quote = ""
        while i < n:
            c = text[i]
            if quote:
                if c == quote:
                    quote = ""
                else:
                    word.append(c)
            elif c in "'\"":
                quote = c
            elif c in WHITESPACE:
                break
            else:
                word.append(c)
            i += 1
        if quote:
            return words, True
        words.append("".join(word))


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

    @property
    def name(self) -> str:
        """The key as written in the file's syntax, e.g. "Login.KillUserProcesses"."""
        return f"{self.section}.{self.key}"

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
)  # fmt: skip

SECTIONS: tuple[str, ...] = ("Login", "Logoutd", "Policy")

_BY_KEY: dict[tuple[str, str], Option] = {(o.section, o.key): o for o in OPTIONS}


def lookup(section: str, key: str) -> Option | None:
    """The row for `key` in `section` (both case-sensitive), or None."""
    return _BY_KEY.get((section, key))


# --- rendering (show-config) ---------------------------------------------------------------

_SPAN_UNITS: tuple[tuple[str, int], ...] = (
    ("y", 31_557_600 * _USEC_PER_SEC),
    ("month", 2_629_800 * _USEC_PER_SEC),
    ("w", 604800 * _USEC_PER_SEC),
    ("d", 86400 * _USEC_PER_SEC),
    ("h", 3600 * _USEC_PER_SEC),
    ("min", 60 * _USEC_PER_SEC),
    ("s", _USEC_PER_SEC),
    ("ms", 1000),
    ("us", 1),
)


def format_timespan(seconds: float) -> str:
    """format_timespan(): "1min 30s", "infinity", "0"; parses back to the same value."""
    if math.isinf(seconds):
        return "infinity"
    usec = round(seconds * _USEC_PER_SEC)
    parts: list[str] = []
    for unit, size in _SPAN_UNITS:
        if usec >= size:
            parts.append(f"{usec // size}{unit}")
            usec %= size
    return " ".join(parts) or "0"


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
    if isinstance(value, tuple):
        return " ".join(_quote_word(str(word)) for word in value)
    return str(value)
