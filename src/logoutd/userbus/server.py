"""Each started user's endpoint at RUNTIME_PATH/systemd/private: created when the user starts,
closed and removed when the user is removed; connections authenticated with SASL EXTERNAL
against the kernel's peer credentials, bounded in number, time and size.

A peer that breaks the protocol or a limit is dropped; nothing it sends reaches the core
except through Systemd1's calls (the Service's rules).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import os
import socket
import struct
import uuid
from collections.abc import Coroutine
from typing import Any

from dbus_fast import Message, MessageType

from logoutd.api.service import Caller, Service
from logoutd.core.sessions import Session
from logoutd.core.unit import Unit
from logoutd.core.users import User
from logoutd.daemon.logs import RATELIMIT
from logoutd.userbus.codec import decode, encode
from logoutd.userbus.systemd1 import Peer, Systemd1
from logoutd.userbus.wire import ProtocolViolation, authenticate, read_message

log = logging.getLogger("logoutd.userbus")

MAX_CONNECTIONS = 32  # per user; one more is refused at once
AUTH_DEADLINE = 5.0  # seconds from connect to BEGIN
MESSAGE_DEADLINE = 5.0  # seconds from a message's first byte to its last
CALL_DEADLINE = 60.0  # seconds for one call to be answered (a start waits on the spawn's own)
MAX_UNSENT = 1 << 20  # bytes queued to a peer that does not read: it is dropped
PRIVATE = ("systemd", "private")  # systemd's own direct endpoint; systemctl, systemd-run
BUS = ("", "bus")  # where sd-bus looks for the user bus: systemd-run --wait, --pty, --pipe
DRIVER = "org.freedesktop.DBus"
SYSTEMD1 = "org.freedesktop.systemd1"


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the peer, from the kernel."""
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", data)
    return pid, uid, gid


def program_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() or "?"
    except OSError:
        return "?"


class Endpoint:
    """One user's socket and its connections: systemd's private socket (peer to peer, no
    Hello), or the user bus (a broker whose only other name is systemd1's)."""

    def __init__(self, systemd1: Systemd1, user: User, where: tuple[str, str]) -> None:
        self.uid = user.uid
        self.gid = user.account.gid
        self.name = user.name
        self.runtime_path = user.runtime_path
        self.subdir, self.socket_name = where
        self.broker = where == BUS
        self.path = "/".join(p for p in (self.runtime_path, *where) if p)
        self.guid = uuid.uuid4().hex
        self.connections: dict[asyncio.StreamWriter, itertools.count[int]] = {}  # -> serials
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.AbstractServer | None = None
        self.dir_fd = -1
        self.bound = False
        self.systemd1 = systemd1

    async def open(self) -> None:
        sock = self._bind()
        try:
            self.server = await asyncio.start_unix_server(self._accepted, sock=sock, limit=4096)
        except BaseException:
            sock.close()
            raise
        log.info("User %s: serving systemd1 (systemd-run --user, systemctl --user) at %s.",
                 self.name, self.path)

    def _bind(self) -> socket.socket:
        """Bind through a descriptor of RUNTIME_PATH/systemd opened without following links, so
        a link the user planted there never makes root create or chown a file elsewhere."""
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        runtime = os.open(self.runtime_path, flags)
        if not self.subdir:
            self.dir_fd = runtime
        else:
            try:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(self.subdir, 0o755, dir_fd=runtime)
                    os.chown(self.subdir, self.uid, self.gid, dir_fd=runtime,
                             follow_symlinks=False)
                self.dir_fd = os.open(self.subdir, flags, dir_fd=runtime)
            finally:
                os.close(runtime)
        name = self.socket_name
        if self.broker and _answers(f"/proc/self/fd/{self.dir_fd}/{name}"):
            # Somebody's bus is there (dbus-daemon of the user's own): it is left alone.
            raise FileExistsError(errno.EEXIST, "a user bus is already there")
        # Bound aside, owned and moded, then renamed in: nobody sees it half made.
        staged = f".{name}.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged, dir_fd=self.dir_fd)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            # The mode comes from the umask at bind: a chmod after it would follow a link
            # the user swapped in (the directory is theirs), and Linux has no lchmod.
            umask = os.umask(0o177)
            try:
                sock.bind(f"/proc/self/fd/{self.dir_fd}/{staged}")
            finally:
                os.umask(umask)
            os.chown(staged, self.uid, self.gid, dir_fd=self.dir_fd, follow_symlinks=False)
            os.rename(staged, name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
            self.bound = True
            sock.listen(64)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in list(self.connections):
            writer.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.dir_fd >= 0:
            if self.bound:  # never what is there instead (the user's own bus)
                with contextlib.suppress(OSError):
                    os.unlink(self.socket_name, dir_fd=self.dir_fd)
            os.close(self.dir_fd)
            self.dir_fd = -1

    def broadcast(self, msg: Message) -> None:
        for writer in list(self.connections):
            self._send(writer, msg)

    def _send(self, writer: asyncio.StreamWriter, msg: Message, sender: str = SYSTEMD1) -> None:
        """Each connection numbers its own messages (sd-bus drops serial 0); the sender is the
        bus name systemd's private connections claim, which clients' matches name."""
        serials = self.connections.get(writer)
        if serials is None or writer.is_closing():
            return
        msg.sender = sender
        msg.serial = next(serials)
        writer.write(encode(msg))
        if writer.transport.get_write_buffer_size() > MAX_UNSENT:
            log.warning("User %s: dropping a systemd1 client that does not read its replies.",
                        self.name, extra=RATELIMIT)
            writer.close()

    async def _accepted(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (asyncio.CancelledError, ConnectionError, EOFError, asyncio.IncompleteReadError):
            pass
        except (ProtocolViolation, TimeoutError) as e:
            # Rate-limited per kind of reason: its text up to the first number or "(" (sizes,
            # uids and errors differ every time), so each kind is seen at least once.
            reason = str(e) or "too slow"
            cut = next((i for i, c in enumerate(reason) if c.isdigit() or c == "("), len(reason))
            log.info("User %s: dropped a systemd1 client: " + reason[:cut].replace("%", "%%")
                     + "%s.", self.name, reason[cut:], extra=RATELIMIT)
        except Exception:
            log.exception("User %s: systemd1 client failed", self.name)
        finally:
            self.connections.pop(writer, None)
            self.tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pid, uid, _ = peer_credentials(writer.get_extra_info("socket"))
        if uid not in (self.uid, 0):
            log.warning("User %s: refused a systemd1 client of uid %d (pid %d).", self.name, uid,
                        pid, extra=RATELIMIT)
            return
        if len(self.connections) >= MAX_CONNECTIONS:
            log.warning("User %s: refused a systemd1 client: %d connections already.",
                        self.name, MAX_CONNECTIONS, extra=RATELIMIT)
            return
        self.connections[writer] = itertools.count(1)
        async with asyncio.timeout(AUTH_DEADLINE):
            await authenticate(reader, writer, uid, self.guid)
        # Root connecting here acts for this user, as on systemd's user manager.
        peer = Peer(Caller(uid=self.uid, gid=self.gid, pid=pid), program_of(pid),
                    lambda msg: self._send(writer, msg))
        # systemd-run names its unit run-uN after the bus name ":1.N": N comes from logoutd's
        # own run-uN counter, so that name is never taken.
        unique = f":1.{self.systemd1.service.manager.units.take_number()}" if self.broker \
            else None
        while True:
            data = await read_message(reader, MESSAGE_DEADLINE)
            try:
                msg = decode(data)
            except Exception as e:
                raise ProtocolViolation(f"unreadable message ({e})") from None
            if msg is None:
                raise ProtocolViolation("unreadable message")
            if unique is not None:
                msg.sender = unique  # as a bus daemon stamps it; replies go back there
                if msg.destination not in (None, SYSTEMD1):
                    self._driver(writer, peer, msg, unique)
                    continue
            async with asyncio.timeout(CALL_DEADLINE):
                await self.systemd1.handle(peer, msg)

    def _driver(self, writer: asyncio.StreamWriter, peer: Peer, msg: Message,
                unique: str) -> None:
        """The bus daemon's part a client of systemd1 calls; nobody else is on this bus."""
        if msg.message_type is not MessageType.METHOD_CALL:
            return
        sig = msg.signature or ""
        answers: dict[tuple[str, str], tuple[str, list[Any]]] = {
            ("Hello", ""): ("s", [unique]),
            ("AddMatch", "s"): ("", []),
            ("RemoveMatch", "s"): ("", []),
            ("GetId", ""): ("s", [self.guid]),
            ("ListNames", ""): ("as", [[DRIVER, SYSTEMD1, unique]]),
            ("ListActivatableNames", ""): ("as", [[DRIVER, SYSTEMD1]]),
        }
        known = (DRIVER, SYSTEMD1, unique)
        if msg.destination != DRIVER:
            reply = _error(msg, "org.freedesktop.DBus.Error.ServiceUnknown",
                           f"The name {msg.destination} was not provided by any .service files: "
                           "this user bus is logoutd's, serving org.freedesktop.systemd1 only.")
        elif (msg.member or "", sig) in answers:
            signature, body = answers[(msg.member or "", sig)]
            reply = Message(message_type=MessageType.METHOD_RETURN, reply_serial=msg.serial,
                            destination=unique, signature=signature, body=body)
        elif sig == "s" and msg.member in ("NameHasOwner", "GetNameOwner",
                                           "GetConnectionUnixUser",
                                           "GetConnectionUnixProcessID"):
            name = msg.body[0]
            if msg.member == "NameHasOwner":
                signature, body = "b", [name in known]
            elif name not in known:
                reply = _error(msg, "org.freedesktop.DBus.Error.NameHasNoOwner",
                               f"Could not get owner of name '{name}': no such name")
                self._send(writer, reply, DRIVER)
                return
            elif msg.member == "GetNameOwner":
                signature, body = "s", [name]
            elif msg.member == "GetConnectionUnixUser":
                signature, body = "u", [self.uid if name == unique else 0]
            else:
                signature, body = "u", [peer.caller.pid if name == unique else os.getpid()]
            reply = Message(message_type=MessageType.METHOD_RETURN, reply_serial=msg.serial,
                            destination=unique, signature=signature, body=body)
        else:
            reply = _error(msg, "org.freedesktop.DBus.Error.UnknownMethod",
                           f"Unknown method {msg.member} or interface {msg.interface}: this "
                           "user bus is logoutd's, serving org.freedesktop.systemd1 only.")
        if not msg.flags & 1:
            self._send(writer, reply, DRIVER)


def _answers(path: str) -> bool:
    """Something listens at path (a socket nobody listens on is a stale one of ours, left by a
    logoutd that was killed)."""
    if not os.path.lexists(path):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as probe:
        probe.setblocking(False)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:
            return True  # not a socket, or not ours to judge: left alone
        return True


def _error(msg: Message, name: str, text: str) -> Message:
    return Message(message_type=MessageType.ERROR, reply_serial=msg.serial,
                   destination=msg.sender, error_name=name, signature="s", body=[text])


class UserBus:
    """Every started user's endpoints, opened and closed as users come and go."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.users: dict[int, tuple[Systemd1, list[Endpoint]]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.jobs = itertools.count(1)

    async def start(self) -> None:
        manager = self.service.manager
        self.service.subscribe(self)
        manager.units.finish_listeners.append(self._unit_finished)
        for user in list(manager.users.values()):
            await self._open(user)

    async def close(self) -> None:
        self.service.unsubscribe(self)
        with contextlib.suppress(ValueError):
            self.service.manager.units.finish_listeners.remove(self._unit_finished)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for _, endpoints in list(self.users.values()):
            for endpoint in endpoints:
                await endpoint.close()
        self.users.clear()

    async def _open(self, user: User) -> None:
        if user.uid in self.users or not user.started or user.finalized \
                or not user.runtime_path:
            return
        endpoints: list[Endpoint] = []

        def broadcast(msg: Message) -> None:
            for endpoint in endpoints:
                endpoint.broadcast(msg)

        systemd1 = Systemd1(self.service, user.uid, broadcast, lambda: next(self.jobs))
        self.users[user.uid] = (systemd1, endpoints)
        for where in (PRIVATE, BUS):
            endpoint = Endpoint(systemd1, user, where)
            try:
                await endpoint.open()
            except OSError as e:
                await endpoint.close()
                log.warning("User %s: not serving systemd1 at %s: %s", user.name, endpoint.path,
                            e.strerror or e)
                continue
            endpoints.append(endpoint)

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        """After the core's step (the user's runtime dir exists then, or is gone)."""
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _close(self, endpoints: list[Endpoint]) -> None:
        for endpoint in endpoints:
            await endpoint.close()

    # -- the manager's listener -----------------------------------------------------------

    def user_new(self, user: User) -> None:
        self._later(self._open(user))

    def session_new(self, session: Session) -> None:
        user = self.service.manager.users.get(session.user.uid)
        if user is not None and user.uid not in self.users:
            self._later(self._open(user))

    def session_removed(self, session: Session) -> None:
        pass

    def user_removed(self, user: User) -> None:
        served = self.users.pop(user.uid, None)
        if served is not None:
            self._later(self._close(served[1]))

    def _unit_finished(self, unit: Unit, result: dict[str, Any]) -> None:
        served = self.users.get(unit.user.uid)
        if served is not None:
            served[0].unit_finished(unit.name)
