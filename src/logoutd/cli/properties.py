"""show-session / show-user: objects as logind's D-Bus properties, printed as `Name=value`.

Names and value formats are loginctl's (`systemctl show` rules): booleans yes/no, time spans
as "10s" or "infinity", timestamps as "Tue 2024-05-14 10:00:00 UTC", lists space-separated.
Properties logoutd has no truth for (seats, displays, idle hints) are left out, not faked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

from logoutd.cli.output import Output, format_timestamp, shown
from logoutd.config.values import parse_tmpfs_size
from logoutd.core.sessions import is_remote_host
from logoutd.errors import InvalidArgument

Properties = list[tuple[str, str]]


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def session_properties(s: dict[str, Any]) -> Properties:
    """A session as org.freedesktop.login1.Session, plus logoutd's stop cause and decision."""
    host = str(s["remote_host"] or "")
    remote = is_remote_host(host)
    return [
        ("Id", s["id"]),
        ("User", str(s["uid"])),
        ("Name", s["user"]),
        ("Timestamp", format_timestamp(s["timestamp"]) if s["timestamp"] else ""),
        ("VTNr", "0"),
        ("Seat", ""),
        ("TTY", s["tty"] or ""),
        ("Remote", _yes_no(remote)),
        ("RemoteHost", host),
        ("RemoteUser", s["remote_user"] or ""),
        ("Service", s["service"] or ""),
        ("Scope", PurePath(s["scope"]).name),
        ("Leader", str(s["leader"] or 0)),
        ("Type", s["type"]),
        ("Class", s["class"]),
        ("Active", _yes_no(s["state"] == "active")),
        ("State", s["state"]),
        ("StopCause", s["stop_cause"] or ""),
        ("StopAction", s["stop_action"] or ""),
        ("KillReason", s["kill_reason"] or ""),
    ]


def user_properties(u: dict[str, Any]) -> Properties:
    """A user as org.freedesktop.login1.User."""
    return [
        ("UID", str(u["uid"])),
        ("GID", str(u["gid"])),
        ("Name", u["name"]),
        ("Timestamp", format_timestamp(u["timestamp"]) if u["timestamp"] else ""),
        ("RuntimePath", u["runtime_path"] or ""),
        ("Service", f"user@{u['uid']}.service"),
        ("Slice", PurePath(u["slice"]).name),
        ("State", u["state"]),
        ("Sessions", " ".join(u["sessions"])),
        ("Linger", _yes_no(u["linger"])),
    ]


def manager_properties(options: Sequence[dict[str, Any]], n_sessions: int) -> Properties:
    """No ID: org.freedesktop.login1.Manager's configuration properties ("…Sec=" as "…USec=")."""
    props: Properties = []
    for option in options:
        key, value = option["key"], option["value"]
        if key.endswith("Sec"):
            key = key[: -len("Sec")] + "USec"
        elif key == "RuntimeDirectorySize":
            value = str(parse_tmpfs_size(value).bytes())  # show-config's text, read back
        props.append((key, value))
        if key == "SessionsMax":
            props.append(("NCurrentSessions", str(n_sessions)))
    return props


def wanted(options: Any) -> list[str]:
    """The -p/-P names, comma lists split, in the order given; empty: every property."""
    names: list[str] = []
    for item in [*(options.property or []), *(options.P or [])]:
        names.extend(n for n in item.split(",") if n)
    return names


def select(props: Properties, names: Sequence[str]) -> Properties:
    if not names:
        return props
    return [(k, v) for k, v in props if k in names]


def show(output: Output, objects: Sequence[Properties], options: Any) -> int:
    """Print each object's properties (blank line between objects), or one JSON document.

    Empty values are hidden unless -a is given or properties were picked with -p/-P.
    """
    names = wanted(options)
    value_only = bool(options.value or options.P)
    if output.json:
        output.emit_json("properties", [dict(select(p, names)) for p in objects])
        return 0
    for index, props in enumerate(objects):
        if index and not value_only:
            output.print()
        for key, value in select(props, names):
            if value or options.all or names:
                output.print(shown(value) if value_only else f"{key}={shown(value)}")
    return 0


def check_names(names: Sequence[str]) -> None:
    """Property names are identifiers; `-p Id=5` is a mistake worth saying so."""
    for name in names:
        if not name.replace("_", "").isalnum():
            raise InvalidArgument(f"Invalid property name '{name}'.")
