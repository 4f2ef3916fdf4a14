"""Turning command-line words into what the API takes: users (names or uids) and signals."""

from __future__ import annotations

import pwd
import signal

from logoutd.errors import InvalidArgument, NoSuchUser

SELF = ("", "self", "auto")  # the caller's own session or user, decided by the daemon


def user(word: str) -> int | None:
    """A uid as given, a user name through NSS (as loginctl); None: the caller's own."""
    if word in SELF:
        return None
    if word.isdigit() and int(word) < 0xFFFFFFFF and int(word) != 0xFFFF:  # uid_is_valid()
        # A uid is the daemon's to judge: one gone from NSS may still have sessions, and one
        # with none is "User ID N is not logged in or lingering.", as loginctl says.
        return int(word)
    try:
        entry = pwd.getpwnam(word)
    except (KeyError, ValueError):
        raise NoSuchUser(f"No user '{word}' known.") from None
    return entry.pw_uid


def signal_number(word: str) -> int:
    """SIGTERM, TERM, term, 15, RTMIN+3, SIGRTMIN+3: systemd's signal_from_string(), any case."""
    text = word.strip().upper()
    if text.isdigit():
        number = int(text)
        if 1 <= number < signal.NSIG:
            return number
        raise InvalidArgument(f"Invalid signal '{word}'.")
    name = text if text.startswith("SIG") else f"SIG{text}"
    for base, limit in (("SIGRTMIN", signal.SIGRTMIN), ("SIGRTMAX", signal.SIGRTMAX)):
        if name == base:
            return int(limit)
        if name.startswith(base + "+") or name.startswith(base + "-"):
            offset = name[len(base):]
            if offset[1:].isdigit():
                number = int(limit) + int(offset)
                if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
                    return number
            raise InvalidArgument(f"Invalid signal '{word}'.")
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise InvalidArgument(f"Invalid signal '{word}'.") from None


def signal_names() -> list[str]:
    """What `--signal help` lists: every signal by number, as `kill -l` does."""
    names = []
    for number in range(1, signal.NSIG):
        try:
            names.append(f"{number:2} {signal.Signals(number).name}")
        except ValueError:
            if signal.SIGRTMIN < number < signal.SIGRTMAX:
                names.append(f"{number:2} SIGRTMIN+{number - signal.SIGRTMIN}")
    return names
