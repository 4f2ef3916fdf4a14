"""The Unix socket server: identifies callers by SO_PEERCRED, caps connections per uid and in
total, bounds size and time, never stalls (DESIGN §10)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import inspect
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from logoutd.api.connections import (
    ROOT_LIMITS,
    USER_LIMITS,
    Connection,
    ConnectionTable,
    Limits,
    MemoryReturn,
)
from logoutd.api.protocol import (
    ANSWER_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_MESSAGE,
    decode_request,
    encode_error,
    encode_result,
)
from logoutd.api.service import Caller, Service
from logoutd.errors import InternalError, LimitsExceeded, LogoutdError, ProtocolError, already_running

log = logging.getLogger("logoutd")
_UCRED = struct.Struct("3i")
RATELIMIT = {"ratelimit": True}  # see logoutd.daemon.logs: lines any user can trigger at will

LISTEN_BACKLOG = 1024
ACCEPT_BATCH = 16  # connections accepted per wake-up, so a flood cannot hog the loop
ACCEPT_RETRY = 0.1  # seconds the listener pauses after accept() ran out of a resource
CLOSE_GRACE = 2.0  # seconds the connections' tasks get to end once cancelled, per round
# Seconds a root peer's first line is awaited on the bare socket (the PAM hook sends it right
# after connect()); then its task reads it, with the usual deadlines.
FIRST_LINE_WAIT = 0.5
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def peer_caller(sock: socket.socket) -> Caller:
    pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return Caller(uid=uid, gid=gid, pid=pid)


class _Peer:
    """One accepted connection: its socket, later its streams, and how to drop it."""

    def __init__(self, sock: socket.socket, caller: Caller) -> None:
        self.sock = sock
        self.caller = caller
        self.writer: asyncio.StreamWriter | None = None
        self.wrapping = False  # its streams are being made: the socket is asyncio's already
        self.dropped = False
        self.released = False  # its place in the table and its descriptor given back
        self.conn: Connection | None = None
        # The answer to a first request read at accept that is not written yet (or not made).
        self.pending: bytes | Coroutine[Any, Any, bytes] | None = None
        self.first_wait: asyncio.TimerHandle | None = None  # see ApiServer._await_first_line

    def drop(self, reason: str) -> None:
        """Tell the peer why (if that does not wait), then close at once."""
        self.dropped = True
        notice = encode_error(LimitsExceeded(reason))
        if self.writer is None:  # not wrapped yet: its task sees `dropped` and ends
            with contextlib.suppress(OSError):
                self.sock.send(notice)
            if not self.wrapping:  # free the descriptor now, not a loop iteration later
                self.sock.close()
            return
        transport = self.writer.transport
        if transport.is_closing():
            return
        with contextlib.suppress(OSError, RuntimeError):
            self.writer.write(notice)
        # An unread answer still queued (or the notice) would keep the transport, and its
        # buffer, for as long as the peer likes: then drop it unsent.
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()


class ApiServer:
    """One listening socket. `root_only`: mode 0600 and uid 0 peers only, the path that PAM and
    root use, which no user can fill (DESIGN §10). `shed` frees a descriptor when accept() runs
    out (the runtime drops the oldest idle user connection)."""

    def __init__(self, service: Service, path: Path, *, root_only: bool = False,
                 limits: Limits | None = None, memory: MemoryReturn | None = None,
                 shed: Callable[[], bool] | None = None) -> None:
        self.service = service
        self.path = path
        self.root_only = root_only
        self.table = ConnectionTable(limits or (ROOT_LIMITS if root_only else USER_LIMITS))
        self.memory = memory
        self.shed = shed
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting: set[_Peer] = set()  # root peers whose first line is awaited at accept
        self._retry: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if _answers(self.path):  # e.g. another daemon's --socket: never take it over
            raise LogoutdError(already_running(
                f"socket {self.path}", "a running server",
                "Stop it first, or give this logoutd another --socket."))
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # stale: no one listens behind it
        sock = socket.socket(socket.AF_UNIX,
                             socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            sock.bind(str(self.path))
            # Users may ask on the shared socket (SO_PEERCRED decides what they may do); the
            # root socket refuses them at connect() already. Set before listen(): no peer can
            # connect in between.
            os.chmod(self.path, 0o600 if self.root_only else 0o666)
            sock.listen(LISTEN_BACKLOG)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._loop.add_reader(sock.fileno(), self._accept)

    async def close(self) -> None:
        if self._sock is None or self._loop is None:
            return
        if self._retry is not None:
            self._retry.cancel()
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        for peer in list(self._waiting):
            self._stop_waiting(peer)
            self._release(peer)
        # Every connection's task is cancelled and awaited: none is left pending for the loop
        # to destroy. A second cancel covers one that swallowed the first; what still runs
        # after that is a bug, and said so.
        for _round in range(2):
            tasks = list(self._tasks)
            for task in tasks:  # each closes its connection on the way out
                task.cancel()
            if not tasks or not (await asyncio.wait(tasks, timeout=CLOSE_GRACE))[1]:
                break
        if self._tasks:
            log.error("%d connections of %s did not end within %g s of the stop: %r",
                      len(self._tasks), self.path, 2 * CLOSE_GRACE, sorted(self._tasks, key=id)[:3])
        self.path.unlink(missing_ok=True)

    def shed_one(self) -> bool:
        """Drop the oldest idle connection (to free a descriptor); False if there is none."""
        conn = self.table.oldest_idle()
        if conn is None:
            return False
        self.table.remove(conn)
        conn.drop("Connection dropped: logoutd is out of file descriptors; this was the "
                  "oldest idle connection.")
        return True

    # -- accepting ------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._sock is not None
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as e:
                self._accept_failed(e)
                return
            self._accepted(sock)

    def _accept_failed(self, e: OSError) -> None:
        """Out of descriptors or memory: log (rate-limited), free one if we can, pause briefly.
        asyncio's own accept loop logs a traceback per attempt here, hence ours."""
        assert self._sock is not None and self._loop is not None
        resources = e.errno in _OUT_OF_RESOURCES
        shed = resources and self.shed is not None and self.shed()
        log.error("Cannot accept a connection on %s: %s%s; retrying in %g s.",
                  self.path, e.strerror or e,
                  ", dropped the oldest idle user connection" if shed else "", ACCEPT_RETRY)
        self._loop.remove_reader(self._sock.fileno())
        self._retry = self._loop.call_later(ACCEPT_RETRY, self._resume)

    def _resume(self) -> None:
        self._retry = None
        if self._sock is not None and self._loop is not None:
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def _accepted(self, sock: socket.socket) -> None:
        sock.setblocking(False)  # accept() hands out a blocking socket; nothing here may wait
        try:
            caller = peer_caller(sock)
        except OSError:
            sock.close()
            return
        if self.root_only and not caller.is_root:  # even if someone widened the mode
            log.warning("Refused uid %d (pid %d) on the root-only socket %s.", caller.uid,
                        caller.pid, self.path, extra=RATELIMIT)
            sock.close()
            return
        peer = _Peer(sock, caller)
        try:
            peer.conn = self.table.admit(caller.uid, peer.drop)
        except LimitsExceeded as e:
            log.warning("Refused a connection of uid %d: %s", caller.uid, e.message, extra=RATELIMIT)
            with contextlib.suppress(OSError):
                sock.send(encode_error(e))
            sock.close()
            return
        if self.memory is not None:
            self.memory.opened()
        if self.root_only and not self._answer_at_once(peer):
            self._await_first_line(peer)
            return
        self._start_task(peer)

    def _start_task(self, peer: _Peer) -> None:
        assert self._loop is not None
        task = self._loop.create_task(self._serve(peer))
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._served(t, peer))

    def _await_first_line(self, peer: _Peer) -> None:
        """Nothing had arrived at accept (the daemon woke at the peer's connect(), before its
        send): wait on the bare socket for FIRST_LINE_WAIT at most, then answer at once or hand
        the connection to its task. Its descriptor stays open meanwhile even if dropped."""
        assert self._loop is not None
        peer.wrapping = True  # a drop now only marks it; _first_line_ready hands it on
        self._loop.add_reader(peer.sock.fileno(), self._first_line_ready, peer)
        peer.first_wait = self._loop.call_later(FIRST_LINE_WAIT, self._first_line_ready, peer)
        self._waiting.add(peer)

    def _first_line_ready(self, peer: _Peer) -> None:
        """Data, EOF, or the wait is over: answer what is there, and on to the task."""
        if peer not in self._waiting:
            return
        self._stop_waiting(peer)
        if not peer.dropped:
            self._answer_at_once(peer)
        self._start_task(peer)

    def _stop_waiting(self, peer: _Peer) -> None:
        assert self._loop is not None
        self._waiting.discard(peer)
        if peer.first_wait is not None:
            peer.first_wait.cancel()
            peer.first_wait = None
        self._loop.remove_reader(peer.sock.fileno())
        peer.wrapping = False

    def _served(self, task: asyncio.Task[None], peer: _Peer) -> None:
        """A task cancelled before its first step never ran _serve's cleanup: do it here."""
        self._tasks.discard(task)
        self._release(peer)

    # -- serving --------------------------------------------------------------------------

    async def _serve(self, peer: _Peer) -> None:
        conn = peer.conn
        assert conn is not None
        try:
            if peer.dropped:
                return
            peer.wrapping = True
            reader, writer = await asyncio.open_unix_connection(sock=peer.sock, limit=MAX_MESSAGE)
            peer.writer = writer
            if peer.pending is not None:  # what _answer_at_once did not write
                pending, peer.pending = peer.pending, None
                writer.write(pending if isinstance(pending, bytes) else await pending)
                await asyncio.wait_for(writer.drain(), ANSWER_TIMEOUT)
                self.table.end(conn)
            await self._requests(peer, conn, reader, writer)
        except (ConnectionError, TimeoutError, OSError):
            pass
        except Exception:
            log.exception("Internal error serving uid %d pid %d", peer.caller.uid,
                          peer.caller.pid, extra=RATELIMIT)
        finally:
            self._release(peer)

    def _release(self, peer: _Peer) -> None:
        """Give the connection's place and descriptor back (once)."""
        if peer.released:
            return
        peer.released = True
        if isinstance(peer.pending, Coroutine):  # dropped before its task awaited it
            peer.pending.close()
        if peer.conn is not None:
            self.table.remove(peer.conn)
        if self.memory is not None:
            self.memory.closed()
        if peer.writer is not None:
            peer.writer.close()
        else:
            peer.sock.close()

    async def _requests(self, peer: _Peer, conn: Connection, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        while not peer.dropped:
            try:
                line = await asyncio.wait_for(reader.readuntil(b"\n"), IDLE_TIMEOUT)
            except asyncio.IncompleteReadError as e:
                if e.partial and not peer.dropped:
                    writer.write(encode_error(ProtocolError("Incomplete request (no newline).")))
                return
            except asyncio.LimitOverrunError:
                writer.write(encode_error(ProtocolError(
                    f"Request too large (limit {MAX_MESSAGE} bytes).")))
                return
            except TimeoutError:
                return
            if peer.dropped:
                return
            if len(line) > MAX_MESSAGE:  # the stream's limit lets one more byte through
                writer.write(encode_error(ProtocolError(
                    f"Request too large (limit {MAX_MESSAGE} bytes).")))
                return
            self.table.begin(conn)
            writer.write(await self._answer(peer.caller, line))
            await asyncio.wait_for(writer.drain(), ANSWER_TIMEOUT)
            self.table.end(conn)

    async def _answer(self, caller: Caller, line: bytes) -> bytes:
        answer = self._answer_now(caller, line)
        return answer if isinstance(answer, bytes) else await answer

    def _answer_now(self, caller: Caller, line: bytes) -> bytes | Coroutine[Any, Any, bytes]:
        """The answer; for a method that waits (on a child, with a deadline), a coroutine."""
        request_id = None
        method = "?"
        try:
            request = decode_request(line)
            request_id, method = request.id, request.method
            result: Any = self.service.call(caller, request.method, request.params)
            if inspect.isawaitable(result):
                return self._answer_later(caller, method, request_id, result)
            return encode_result(result, request_id)
        except Exception as e:
            return _failed(e, caller, method, request_id)

    async def _answer_later(self, caller: Caller, method: str, request_id: Any,
                            result: Awaitable[Any]) -> bytes:
        try:
            return encode_result(await result, request_id)
        except Exception as e:
            return _failed(e, caller, method, request_id)

    def _answer_at_once(self, peer: _Peer) -> bool:
        """A root peer's first request, answered in the accept's own loop step when its line
        has arrived already (the PAM hook sends it right after connect()): the login waits for
        one wake-up of the daemon, not for the several that making the connection's streams
        takes. The line is peeked, so anything else (no whole line yet, more than the limit)
        stays in the socket for the connection's task, which also writes what send() left.
        False if nothing has arrived yet."""
        conn = peer.conn
        assert conn is not None
        try:
            head = peer.sock.recv(MAX_MESSAGE + 1, socket.MSG_PEEK)
        except BlockingIOError:
            return False
        except OSError:
            return True
        end = head.find(b"\n")
        if end < 0:
            return True
        try:
            line = peer.sock.recv(end + 1)  # exactly the peeked line: it is there
        except OSError:
            return True
        self.table.begin(conn)
        answer = self._answer_now(peer.caller, line)
        if not isinstance(answer, bytes):
            peer.pending = answer  # the task awaits it and writes it, then ends the request
            return True
        try:
            sent = peer.sock.send(answer)
        except BlockingIOError:
            sent = 0
        except OSError:  # the peer is gone: its task sees the end of the stream
            sent = len(answer)
        if sent < len(answer):
            peer.pending = answer[sent:]
        else:
            self.table.end(conn)
        return True


def _failed(e: Exception, caller: Caller, method: str, request_id: Any) -> bytes:
    """The error answer to a request that raised e; an internal error is logged."""
    if isinstance(e, LogoutdError):
        if e.code != "no_such_session":
            log.debug("Request from uid %d pid %d failed: %s", caller.uid, caller.pid, e,
                      extra=RATELIMIT)
        return _encode_error(e, request_id)
    log.error("Internal error answering %s from uid %d pid %d", method, caller.uid, caller.pid,
              exc_info=e, extra=RATELIMIT)
    return _encode_error(InternalError(
        f"Internal error in logoutd answering {method[:100]!r}; it is logged."), request_id)


def _encode_error(error: LogoutdError, request_id: Any) -> bytes:
    """The error answer; without the id if the id itself cannot be encoded (nested too deep)."""
    try:
        return encode_error(error, request_id)
    except Exception:
        return encode_error(error)


def _answers(path: Path) -> bool:
    """Whether something listens on the socket at path (a full backlog counts as listening)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK
                          | socket.SOCK_CLOEXEC)
    try:
        probe.connect(str(path))
    except (BlockingIOError, InterruptedError):
        return True
    except OSError:
        return False  # ECONNREFUSED (stale), ENOENT, not a socket
    finally:
        probe.close()
    return True
