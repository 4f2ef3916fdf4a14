"""The thin part dbus-fast lacks for a peer-to-peer server: the server's side of the SASL
handshake (EXTERNAL only) and cutting the stream into whole, size-checked messages.

dbus-fast's MessageBus is a client of a bus daemon only: it always authenticates as the client
and calls Hello. Its Marshaller and Unmarshaller work on bytes, so they are used as they are.
"""

from __future__ import annotations

import asyncio
import struct

MAX_LINE = 512  # one SASL command; sd-bus sends < 100 bytes
MAX_LINES = 16  # commands before BEGIN
MAX_MESSAGE = 1 << 20  # bytes, header and body; systemd-run's calls are a few KiB
FIXED_HEADER = 16


class ProtocolViolation(Exception):
    """The peer broke the protocol or a limit: the connection is dropped."""


async def read_line(reader: asyncio.StreamReader) -> str:
    """One CRLF-terminated SASL command, ASCII, at most MAX_LINE bytes."""
    line = bytearray()
    while not line.endswith(b"\r\n"):
        chunk = await reader.read(1) if len(line) < MAX_LINE else b""
        if not chunk:
            raise ProtocolViolation("auth line too long or connection closed")
        line += chunk
    try:
        return line[:-2].decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolViolation("auth line is not ASCII") from None


def _claims(data: str, uid: int) -> bool:
    """EXTERNAL's initial response: the hex of the uid in decimal, as sd-bus and libdbus send."""
    try:
        return bytes.fromhex(data).decode("ascii") == str(uid)
    except ValueError:
        return False


async def authenticate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, uid: int,
                       guid: str) -> None:
    """Server side of SASL until BEGIN: EXTERNAL, the identity being the kernel's (SO_PEERCRED)
    uid; a claimed uid must be that one. Unix fds are refused (nothing here takes one)."""
    if await reader.readexactly(1) != b"\0":
        raise ProtocolViolation("no NUL byte before the auth")
    authenticated = False
    for _ in range(MAX_LINES):
        verb, _, argument = (await read_line(reader)).partition(" ")
        if not authenticated:
            if verb == "AUTH":
                mechanism, _, data = argument.partition(" ")
                if mechanism != "EXTERNAL":
                    writer.write(b"REJECTED EXTERNAL\r\n")
                    continue
                if not data:
                    writer.write(b"DATA\r\n")
                    verb, _, data = (await read_line(reader)).partition(" ")
                    if verb != "DATA":
                        writer.write(b"REJECTED EXTERNAL\r\n")
                        continue
                if data and not _claims(data, uid):
                    raise ProtocolViolation(f"claims another uid than its own ({uid})")
                writer.write(f"OK {guid}\r\n".encode())
                authenticated = True
            elif verb in ("CANCEL", "ERROR"):
                writer.write(b"REJECTED EXTERNAL\r\n")
            elif verb == "BEGIN":
                raise ProtocolViolation("BEGIN before AUTH")
            else:
                writer.write(b"ERROR unknown command\r\n")
        elif verb == "BEGIN":
            return
        elif verb == "NEGOTIATE_UNIX_FD":
            writer.write(b"ERROR unix fd passing is not supported here\r\n")
        elif verb in ("CANCEL", "ERROR"):
            writer.write(b"REJECTED EXTERNAL\r\n")
            authenticated = False
        else:
            writer.write(b"ERROR unknown command\r\n")
        await writer.drain()
    raise ProtocolViolation(f"no BEGIN after {MAX_LINES} auth commands")


def message_size(fixed: bytes) -> int:
    """A message's whole size from its fixed 16-byte header; ProtocolViolation past the limit."""
    endian = {ord("l"): "<", ord("B"): ">"}.get(fixed[0])
    if endian is None or fixed[3] != 1:
        raise ProtocolViolation("not a D-Bus message (endianness or protocol version)")
    body, fields = struct.unpack(f"{endian}I4xI", fixed[4:16])
    size = FIXED_HEADER + fields + (-fields & 7) + body
    if size > MAX_MESSAGE:
        raise ProtocolViolation(f"message of {size} bytes, more than {MAX_MESSAGE}")
    return int(size)


async def read_message(reader: asyncio.StreamReader, deadline: float) -> bytes:
    """The next whole message: waits for its first byte as long as the peer likes (an idle
    client), then the rest within `deadline` seconds."""
    first = await reader.readexactly(1)
    async with asyncio.timeout(deadline):
        fixed = first + await reader.readexactly(FIXED_HEADER - 1)
        size = message_size(fixed)
        return fixed + await reader.readexactly(size - FIXED_HEADER)
