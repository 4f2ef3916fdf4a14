"""enable-linger / disable-linger: keep users started without a session, or stop doing so.

Linger is the file <state-dir>/linger/<user name>. Root may set it for anyone, a user for
itself (no USER: the caller).
"""

from __future__ import annotations

from logoutd.cli import resolve
from logoutd.cli.verb import Invocation, Verb


def _set(inv: Invocation, enable: bool) -> int:
    uids = [resolve.user(word) for word in inv.words] or [None]
    results = [inv.call("set_linger", uid=uid, enable=enable) for uid in uids]
    if inv.output.json:
        inv.output.emit_json("linger", results)
    return 0


def enable(inv: Invocation) -> int:
    return _set(inv, True)


def disable(inv: Invocation) -> int:
    return _set(inv, False)


ENABLE = Verb("enable-linger", enable, "Enable linger state of one or more users", "[USER…]",
              group="User")
DISABLE = Verb("disable-linger", disable, "Disable linger state of one or more users", "[USER…]",
               group="User")
