"""Asking polkit, as logind does for SetUserLinger, when polkitd is on the bus."""

from __future__ import annotations

import asyncio

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from logoutd.errors import AccessDenied
from logoutd.login1.wire import BusError, dbus_call

NAME = "org.freedesktop.PolicyKit1"
TIMEOUT = 25.0  # sd-bus' default call timeout: an interactive agent gets that long
ALLOW_USER_INTERACTION = 1
INTERACTIVE_REQUIRED = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"


async def check(bus: MessageBus, sender: str | None, action: str,
                interactive: bool) -> bool | None:
    """None when polkitd is not on the bus; True when it allows; raises when it refuses.

    The subject is the caller's bus name, as sd-bus' bus_verify_polkit_async() sends it.
    """
    if not (await dbus_call(bus, "NameHasOwner", "s", [NAME]))[0]:
        return None
    subject = ["system-bus-name", {"name": Variant("s", sender or "")}]
    flags = ALLOW_USER_INTERACTION if interactive else 0
    call = bus.call(Message(
        destination=NAME, path="/org/freedesktop/PolicyKit1/Authority",
        interface="org.freedesktop.PolicyKit1.Authority", member="CheckAuthorization",
        signature="(sa{sv})sa{ss}us", body=[subject, action, {}, flags, ""]))
    try:
        reply = await asyncio.wait_for(call, TIMEOUT)
    except TimeoutError:
        raise AccessDenied(f"polkit did not answer for {action} in time.") from None
    if reply.message_type is MessageType.ERROR:
        detail = reply.body[0] if reply.body else reply.error_name
        raise AccessDenied(f"polkit refused to check {action}: {detail}")
    authorized, challenge, _details = reply.body[0]
    if authorized:
        return True
    if challenge:  # polkit would allow it after authentication, and no agent answered
        raise BusError(INTERACTIVE_REQUIRED, f"Interactive authentication required for {action}.")
    raise AccessDenied(f"Access denied by polkit ({action}).")

