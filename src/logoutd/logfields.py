"""Structured fields for log records (`extra=fields(...)`): the journal gets them as its own
fields, syslog as a `KEY=value` suffix, stderr not at all. Stdlib only: core uses it."""

from __future__ import annotations

from typing import Any

# What the code calls a value -> the field name in the journal and the syslog suffix. Where
# systemd-logind has a name for it (SESSION_ID=, USER_ID= for the user *name*, LEADER=),
# that name, so `journalctl SESSION_ID=5` works for both.
NAMES = {
    "session": "SESSION_ID",
    "user": "USER_ID",
    "uid": "UID",
    "leader": "LEADER",
    "cause": "STOP_CAUSE",
    "action": "STOP_ACTION",
    "signals": "SIGNALS",
    "count": "COUNT",
    "unit": "LOGOUTD_UNIT",
}
KEY = "log_fields"  # the LogRecord attribute that carries them


def fields(**values: Any) -> dict[str, Any]:
    """`extra=` for a log call: known names mapped (see NAMES), None values left out."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        out[NAMES.get(name, name.upper())] = str(value)
    return {KEY: out}
