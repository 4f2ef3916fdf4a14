"""login1's hold on the system bus: connect, own the name, and get both back after a bus restart."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from logoutd.errors import LogoutdError, already_running
from logoutd.login1.wire import DBUS, dbus_call, describe_process, text_of

log = logging.getLogger("logoutd")

NAME = "org.freedesktop.login1"
DO_NOT_QUEUE = 4
DEFAULT_ADDRESS = "unix:path=/run/dbus/system_bus_socket"
# pam_systemd's logind_running() gate; logind creates it at start "unconditionally".
SEATS_DIR = Path("/run/systemd/seats")
RECONNECT_FIRST, RECONNECT_MAX = 0.5, 10.0  # seconds between tries after losing the bus


class BusConnection:
    """One connection that owns NAME; every message on it goes to `on_message`."""

    def __init__(self, on_message: Callable[[Message], bool]) -> None:
        self._on_message = on_message
        self.bus: MessageBus | None = None
        self._closing = False
        self._watcher: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", DEFAULT_ADDRESS)

    async def open(self) -> None:
        """Connect and claim the name, or raise having changed nothing."""
        await self._connect()
        if self.address == DEFAULT_ADDRESS:
            _mark_running()

    async def close(self) -> None:
        """Let the name go and end the reconnect loop; returns once the watcher has ended."""
        self._closing = True
        bus, self.bus = self.bus, None
        if bus is not None:
            bus.disconnect()
        watcher, self._watcher = self._watcher, None
        if watcher is None:
            return
        # It returns once the connection is down; a reconnect loop sleeping is cancelled.
        done, _pending = await asyncio.wait({watcher}, timeout=2.0)
        if not done:
            watcher.cancel()
            await asyncio.wait({watcher})

    def send(self, msg: Message) -> asyncio.Future[None] | None:
        """Send if connected (a reply to a caller of a lost connection goes nowhere)."""
        if self.bus is None or not self.bus.connected:
            return None
        future: asyncio.Future[None] = self.bus.send(msg)
        return future

    async def credentials(self, sender: str | None) -> dict[str, Any]:
        """The sender's credentials as the bus daemon saw them at connect (SO_PEERCRED)."""
        if self.bus is None:
            raise LogoutdError("not connected")
        creds: dict[str, Any] = (await dbus_call(self.bus, "GetConnectionCredentials", "s",
                                                 [sender]))[0]
        return creds

    async def _connect(self) -> None:
        address = self.address
        try:
            bus = await MessageBus(bus_type=BusType.SYSTEM, negotiate_unix_fd=True).connect()
        except Exception as e:  # OSError, AuthError, and dbus-fast's plain Exceptions
            raise LogoutdError(f"Cannot connect to the system bus at {address}: {e}") from None
        bus.add_message_handler(self._on_message)
        reply = await bus.call(Message(destination=DBUS, path="/org/freedesktop/DBus",
                                       interface=DBUS, member="RequestName", signature="su",
                                       body=[NAME, DO_NOT_QUEUE]))
        if reply.message_type is MessageType.ERROR:
            bus.disconnect()
            raise LogoutdError(f"The system bus at {address} refused {NAME} to logoutd: "
                               f"{reply.error_name}: {text_of(reply)}")
        if reply.body[0] not in (1, 4):  # PRIMARY_OWNER, ALREADY_OWNER
            owner = await _describe_owner(bus, NAME)
            bus.disconnect()
            raise LogoutdError(already_running(
                f"{NAME} on the system bus at {address}", owner,
                "Stop that service (systemd-logind or elogind) or run logoutd without --dbus."))
        self.bus = bus
        # Not with the handlers' tasks: cancelling a waiter would cancel dbus-fast's shared future.
        self._watcher = asyncio.get_running_loop().create_task(self._watch(bus))
        self._watcher.add_done_callback(_watcher_ended)

    async def _watch(self, bus: MessageBus) -> None:
        """The bus went away (dbus-daemon restarted): reconnect, and take the name back.

        Sessions are untouched meanwhile; logins through pam_systemd get no session until
        then (pam_systemd fails, its line is optional), those through the hook still do.
        """
        try:
            await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
        except Exception as e:  # the connection's own error ends the wait too: it is the cause
            log.info("System bus connection ended: %s", e)
        if self._closing or self.bus is not bus:
            return
        self.bus = None
        delay = RECONNECT_FIRST
        log.warning("Lost the system bus at %s; %s is not served until it is back.",
                    self.address, NAME)
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                # _connect() starts the next watcher; this one ends here.
                await self._connect()
            except LogoutdError as e:
                log.warning("%s (retrying in %gs)", e.message, min(delay * 2, RECONNECT_MAX))
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            log.info("Serving %s again on the system bus at %s.", NAME, self.address)
            return


def _watcher_ended(task: asyncio.Task[None]) -> None:
    """A watcher that failed leaves the name unserved after the next bus restart: say so."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("Watching the system bus failed: %s will not be taken back if the bus "
                  "restarts.", NAME, exc_info=error)


async def _describe_owner(bus: MessageBus, name: str) -> str:
    try:
        owner = await dbus_call(bus, "GetNameOwner", "s", [name])
        pid = await dbus_call(bus, "GetConnectionUnixProcessID", "s", [owner[0]])
    except LogoutdError as e:
        return f"another connection ({e.message})"
    return f"{owner[0]} ({describe_process(int(pid[0]))})"


def _mark_running() -> None:
    """On the machine's own system bus, tell pam_systemd a login manager runs, as logind does.

    Not /run/systemd/system: that says systemd is PID 1, and systemctl and package scripts
    would believe it (docs/dbus.md).
    """
    if SEATS_DIR.is_dir():
        return
    try:
        SEATS_DIR.mkdir(mode=0o755, parents=True)
    except OSError as e:
        log.warning("Cannot create %s (%s): pam_systemd will not call logoutd.", SEATS_DIR,
                    e.strerror)
    else:
        log.info("Created %s: pam_systemd now asks org.freedesktop.login1 for sessions.",
                 SEATS_DIR)
