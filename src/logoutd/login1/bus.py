"""`org.freedesktop.login1` on the system bus, over the same Service as the socket API.

dbus-fast's high-level ServiceInterface cannot be used here: its handlers never see the message
(no sender, so no caller for `CreateSession(pid=0)` or for authorization) and its Properties
handler refuses `GetAll("")`, which every `loginctl show-*` sends. So one low-level message
hook claims every call under /org/freedesktop/login1 (`handlers.py` answers it); each call runs
as its own task and never waits on anything but the bus (the caller's credentials, polkit): a
stuck daemon would hang every login for pam_systemd's 2-minute timeout. `connection.py` holds
the bus and the name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from dbus_fast import Message, MessageFlag, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError

from logoutd.api.service import Service
from logoutd.core.sessions import Session
from logoutd.core.users import User
from logoutd.errors import LogoutdError
from logoutd.login1 import objects
from logoutd.login1.connection import NAME, BusConnection
from logoutd.login1.fifo import ReferenceFifos
from logoutd.login1.handlers import Handlers
from logoutd.login1.labels import ROOT, session_path, user_path
from logoutd.login1.wire import error_name, ours

__all__ = ["NAME", "Login1"]

log = logging.getLogger("logoutd")
CLOSE_GRACE = 2.0  # seconds calls in flight get to end once cancelled at close


class Login1:
    """The bus connection, the handlers' tasks (owned and awaited here), the reference FIFOs
    and the signals."""

    def __init__(self, service: Service, fifo_dir: Path) -> None:
        self.service = service
        self.fifo_dir = fifo_dir
        self.conn = BusConnection(self._on_message)
        self.fifos: ReferenceFifos | None = None
        self.handlers = Handlers(service, self.conn, lambda: self.fifos)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def bus(self) -> MessageBus | None:
        """The live connection, or None while the bus is away."""
        return self.conn.bus

    async def start(self) -> None:
        """Claim the name (or refuse to start, having changed nothing), then reopen the FIFOs."""
        await self.conn.open()
        self.fifos = ReferenceFifos(self.fifo_dir, asyncio.get_running_loop(), self._fifo_hung_up)
        # No await between the name and this: calls already queued run only afterwards.
        for session_id in self.fifos.reopen(s.id for s in self.service.sessions()):
            log.info("Session %s: its PAM process went away while logoutd was down.", session_id)
            self.service.reference_closed(session_id)
        self.service.subscribe(self)
        log.info("Serving %s on the system bus at %s (%d reference FIFOs reopened).", NAME,
                 self.conn.address, len(self.fifos.watched()))

    def describe(self) -> dict[str, Any]:
        """For `logoutctl status`."""
        return {"name": NAME, "address": self.conn.address, "connected": self.conn.bus is not None,
                "reference_fifos": len(self.fifos.watched()) if self.fifos is not None else 0}

    async def close(self) -> None:
        """Stop serving: no new calls, those in flight cancelled and awaited, the name let go."""
        self.service.unsubscribe(self)
        if self.fifos is not None:
            self.fifos.close()
        await self.conn.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=CLOSE_GRACE)
            for task in pending:  # a call that ignores cancellation: say which, do not hang
                log.error("A %s call did not end within %g s of the stop: %r", NAME,
                          CLOSE_GRACE, task)

    # -- dispatch -------------------------------------------------------------------------------

    def _on_message(self, msg: Message) -> bool:
        """dbus-fast's hook: claim every method call on our paths and answer it from a task.

        dbus-fast never closes the file descriptors a message carries: those of a message not
        ours are closed here at once (logoutd expects none), those of a call once answered.
        """
        if msg.message_type is not MessageType.METHOD_CALL or not ours(msg.path):
            close_fds(msg)
            return False
        task = asyncio.get_running_loop().create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _answer(self, msg: Message) -> None:
        """One call from start to reply; an error becomes its D-Bus error reply, a bug an
        Internal error reply and a logged traceback."""
        try:
            reply = await self.handlers.handle(msg)
        except LogoutdError as e:
            reply = Message.new_error(msg, error_name(e), e.message)
        except DBusError as e:
            reply = Message.new_error(msg, e.type, e.text)
        except Exception:
            log.exception("Internal error answering %s.%s from %s", msg.interface, msg.member,
                          msg.sender)
            reply = Message.new_error(msg, "org.freedesktop.DBus.Error.Failed", "Internal error")
        finally:
            close_fds(msg)
        if reply is not None and not msg.flags & MessageFlag.NO_REPLY_EXPECTED:
            self.conn.send(reply)

    # -- the core's events ----------------------------------------------------------------------

    def session_new(self, session: Session) -> None:
        self._signal("SessionNew", "so", [session.id, session_path(session.id)])

    def session_removed(self, session: Session) -> None:
        if self.fifos is not None:
            self.fifos.drop(session.id)
        self._signal("SessionRemoved", "so", [session.id, session_path(session.id)])

    def user_new(self, user: User) -> None:
        self._signal("UserNew", "uo", [user.uid, user_path(user.uid)])

    def user_removed(self, user: User) -> None:
        self._signal("UserRemoved", "uo", [user.uid, user_path(user.uid)])

    def _signal(self, member: str, signature: str, body: list[Any]) -> None:
        self.conn.send(Message.new_signal(ROOT, objects.MANAGER_IFACE, member, signature, body))

    def _fifo_hung_up(self, session_id: str) -> None:
        if self.service.reference_closed(session_id):
            log.info("Session %s: its PAM process closed the reference FIFO.", session_id)


def close_fds(msg: Message) -> None:
    """Close the file descriptors a received message carried (each once)."""
    fds, msg.unix_fds = msg.unix_fds, []
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
