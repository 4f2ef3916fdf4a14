"""The Unix socket server: identifies callers by SO_PEERCRED, bounds size and time, never stalls."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import struct
from pathlib import Path
from typing import Any

from logoutd.api.protocol import (
    ANSWER_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_MESSAGE,
    decode_request,
    encode_error,
    encode_result,
)
from logoutd.api.service import Caller, Service
from logoutd.errors import LogoutdError, ProtocolError

log = logging.getLogger("logoutd")
_UCRED = struct.Struct("3i")


def peer_caller(sock: socket.socket) -> Caller:
    pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return Caller(uid=uid, gid=gid, pid=pid)


class ApiServer:
    """One listening socket. `root_only`: mode 0600 and uid 0 peers only, the path that PAM and
    root use, which no user can fill (DESIGN §10)."""

    def __init__(self, service: Service, path: Path, *, root_only: bool = False) -> None:
        self.service = service
        self.path = path
        self.root_only = root_only
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.path), limit=MAX_MESSAGE, backlog=1024
        )
        # Users may ask on the shared socket (SO_PEERCRED decides what they may do); the root
        # socket refuses them at connect() already.
        os.chmod(self.path, 0o600 if self.root_only else 0o666)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):  # Python 3.11 leaves open connections running
                writer.close()
            await self._server.wait_closed()
            self.path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        self._writers.add(writer)
        try:
            caller = peer_caller(sock)
            if self.root_only and not caller.is_root:
                return
            while True:
                try:
                    line = await asyncio.wait_for(reader.readuntil(b"\n"), IDLE_TIMEOUT)
                except asyncio.IncompleteReadError as e:
                    if e.partial:
                        writer.write(encode_error(ProtocolError("Incomplete request (no newline).")))
                    break
                except asyncio.LimitOverrunError:
                    writer.write(encode_error(ProtocolError(
                        f"Request too large (limit {MAX_MESSAGE} bytes).")))
                    break
                except TimeoutError:
                    break
                if len(line) > MAX_MESSAGE:  # the stream's limit lets one more byte through
                    writer.write(encode_error(ProtocolError(
                        f"Request too large (limit {MAX_MESSAGE} bytes).")))
                    break
                writer.write(await self._answer(caller, line))
                await asyncio.wait_for(writer.drain(), ANSWER_TIMEOUT)
        except (ConnectionError, TimeoutError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, caller: Caller, line: bytes) -> bytes:
        request_id = None
        try:
            request = decode_request(line)
            request_id = request.id
            result: Any = self.service.call(caller, request.method, request.params)
            if inspect.isawaitable(result):  # a method that waits (on a child, with a deadline)
                result = await result
            return encode_result(result, request_id)
        except LogoutdError as e:
            if e.code != "no_such_session":
                log.debug("Request from uid %d pid %d failed: %s", caller.uid, caller.pid, e)
            return encode_error(e, request_id)
