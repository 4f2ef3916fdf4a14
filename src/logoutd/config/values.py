"""logind.conf value parsers, copied from systemd v252 (parse_boolean(), parse_time(),
parse_size(), safe_atou64(), config_parse_strv(), config_parse_tmpfs_size(), …). A parser
returns the value or raises BadValue: logind's wording of the warning, and what is accepted;
a printer (format_timespan(), format_tmpfs_size()) writes a value that parses back to itself.
"""

from __future__ import annotations

import errno
import math
import os
import re
from collections.abc import Callable

from logoutd.config.model import KillMode, SdLoginFiles, TmpfsSize

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


class BadValue(ValueError):
    """A refused value: logind's wording (`message`) and what the key accepts instead."""

    def __init__(self, message: str, accepted: str) -> None:
        super().__init__(message)
        self.message = message
        self.accepted = accepted


def _skip_ws(text: str, i: int = 0) -> int:
    while i < len(text) and text[i] in WHITESPACE:
        i += 1
    return i


# --- booleans ------------------------------------------------------------------------------

_TRUE = frozenset({"1", "yes", "y", "true", "t", "on"})
_FALSE = frozenset({"0", "no", "n", "false", "f", "off"})
BOOL_ACCEPTED = "yes or no (also 1/0, true/false, on/off, y/n, t/f)"
KILL_MODE_ACCEPTED = "yes, no or permissive (also 1/0, true/false, on/off, y/n, t/f)"


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
        raise BadValue(f"Failed to parse boolean value, ignoring: {text}", BOOL_ACCEPTED)
    return value


def parse_kill_mode(text: str) -> KillMode:
    """KillUserProcesses=: a boolean as logind takes it, or "permissive"."""
    value = _boolean(text)
    if value is not None:
        return KillMode.YES if value else KillMode.NO
    if text.isascii() and text.lower() == KillMode.PERMISSIVE:
        return KillMode.PERMISSIVE
    raise BadValue(f"Failed to parse KillUserProcesses= value, ignoring: {text}",
                   KILL_MODE_ACCEPTED)


def parse_sd_login_files(text: str) -> SdLoginFiles:
    """SdLoginFiles=: auto, or a boolean."""
    value = _boolean(text)
    if value is not None:
        return SdLoginFiles.YES if value else SdLoginFiles.NO
    if text.isascii() and text.lower() == SdLoginFiles.AUTO:
        return SdLoginFiles.AUTO
    raise BadValue(f"Failed to parse SdLoginFiles= value, ignoring: {text}",
                   "auto, yes or no (also 1/0, true/false, on/off, y/n, t/f)")


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


_SPAN_UNITS = tuple((unit, dict(_TIME_UNITS)[unit])
                    for unit in ("y", "month", "w", "d", "h", "min", "s", "ms", "us"))


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


def _seconds(usec: int) -> float:
    return math.inf if usec == _USEC_INFINITY else usec / _USEC_PER_SEC


SEC_ACCEPTED = "a time span: seconds (30, 1.5) or with units (90s, 1min 30s, 2h, 500ms), or infinity"


def parse_sec(text: str) -> float:
    """config_parse_sec(): a time span in seconds; no unit means seconds."""
    try:
        return _seconds(_parse_usec(text))
    except _Errno:
        raise BadValue(f"Failed to parse sec value, ignoring: {text}", SEC_ACCEPTED) from None


def parse_sec_fix_0(text: str) -> float:
    """config_parse_sec_fix_0(): like parse_sec(), but 0 means infinity."""
    try:
        usec = _parse_usec(text)
    except _Errno:
        raise BadValue(f"Failed to parse time value, ignoring: {text}",
                       SEC_ACCEPTED + " (0 also means never)") from None
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
        raise BadValue(f"Failed to parse uint64 value, ignoring: {text}",
                       f"an integer from 0 to {_UINT64_MAX}") from None


def parse_unsigned(text: str) -> int:
    """config_parse_unsigned()."""
    try:
        return _strtou(text, _UINT_MAX)
    except _Errno:
        raise BadValue(f"Failed to parse unsigned value, ignoring: {text}",
                       f"an integer from 0 to {_UINT_MAX}") from None


_AUTOVTS_ACCEPTED = "an integer from 0 to 15"


def parse_n_autovts(text: str) -> int:
    """logind's config_parse_n_autovts()."""
    try:
        value = _strtou(text, _UINT_MAX)
    except _Errno:
        raise BadValue(f"Failed to parse number of autovts, ignoring: {text}",
                       _AUTOVTS_ACCEPTED) from None
    if value > 15:
        raise BadValue(f"A maximum of 15 autovts are supported, ignoring: {text}", _AUTOVTS_ACCEPTED)
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


def parse_tmpfs_size(text: str) -> TmpfsSize:
    """config_parse_tmpfs_size(): a percentage of RAM or bytes (K, M, G, …)."""
    try:
        permyriad = _parse_permyriad(text)
        if permyriad > 0:
            return TmpfsSize(permyriad=permyriad)
    except _Errno:
        pass
    try:
        size = _parse_size(text)
        if size <= 0:
            raise _Errno(errno.ERANGE)
    except _Errno as err:
        raise BadValue(f"Failed to parse size value '{text}', ignoring: {err}",
                       "a size in bytes with an optional K, M, G, T, P or E suffix (64M, 1.5G), "
                       "or a percentage of RAM (10%, 2.5%)") from None
    return TmpfsSize(size=size)


def format_tmpfs_size(value: TmpfsSize) -> str:
    """RuntimeDirectorySize= in the file's syntax: "10%", "10.25%", "64M", "1536M", "1000"."""
    if value.permyriad:
        whole, hundredths = divmod(value.permyriad, 100)
        return f"{whole}.{hundredths:02d}".rstrip("0").rstrip(".") + "%"
    for suffix, factor in _IEC_SUFFIXES:
        if factor > 1 and value.size % factor == 0:
            return f"{value.size // factor}{suffix}"
    return str(value.size)


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
        raise BadValue(f"Failed to parse handle action setting, ignoring: {text}",
                       ", ".join(sorted(HANDLE_ACTIONS)))
    return text


def parse_removed(key: str) -> Callable[[str], object]:
    """A key logind still accepts but no longer supports (config_parse_compat_user_tasks_max())."""

    def parse(text: str) -> object:
        raise BadValue(f"Support for option {key}= has been removed.",
                       "nothing: remove the line (TasksMax= in user-.slice.d/ drop-ins replaces it)")

    return parse


_PATH_ACCEPTED = "an absolute path without '..' components"


def _simplified_absolute_path(key: str, text: str) -> str:
    """path_simplify_and_warn(PATH_CHECK_ABSOLUTE): absolute, no "..", "//" and "/./" folded."""
    if not text.startswith("/"):
        raise BadValue(f"{key}= path is not absolute, ignoring: {text}", _PATH_ACCEPTED)
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts or "\0" in text:
        raise BadValue(f"{key}= path is not normalized, ignoring: {text}", _PATH_ACCEPTED)
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


_NAME_RULES = "no ':', '/', control characters or surrounding spaces"


def _user(text: str, accepted: str) -> str:
    if not _valid_name(text):
        raise BadValue(f'Invalid user name "{text}", ignoring.', accepted)
    return text


def user_name(text: str) -> str:
    """One user name."""
    return _user(text, f"a user name ({_NAME_RULES})")


def group_name(text: str) -> str:
    """One group name, written "name" or "@name"; stored without the "@"."""
    name = text.removeprefix("@")
    if not _valid_name(name):
        raise BadValue(f'Invalid group name "{text}", ignoring.',
                       f"a group name, or @group ({_NAME_RULES})")
    return name


def user_or_group(text: str) -> str:
    """A user name, or "@group"; stored as written."""
    accepted = f"a user name, or @group ({_NAME_RULES})"
    if text.startswith("@"):
        if not _valid_name(text[1:]):
            raise BadValue(f'Invalid group name "{text}", ignoring.', accepted)
        return text
    return _user(text, accepted)


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
