"""The user bus's SASL server side and message framing, on in-memory streams."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest

from logoutd.userbus.wire import MAX_MESSAGE, ProtocolViolation, authenticate, message_size


class Writer:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        pass


def run_auth(data: bytes, uid: int = 1000) -> tuple[bytes, BaseException | None, bytes]:
    """What the server wrote, what it raised, and what was left unread after BEGIN."""
    async def go() -> tuple[bytes, BaseException | None, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        writer: Any = Writer()
        error: BaseException | None = None
        try:
            await authenticate(reader, writer, uid, "0" * 32)
        except (ProtocolViolation, asyncio.IncompleteReadError) as e:
            error = e
        return writer.data, error, await reader.read()
    return asyncio.run(go())


HEX_1000 = b"1000".hex().encode()


def test_sd_bus_pipelined_handshake_is_answered_and_messages_after_begin_are_left():
    written, error, rest = run_auth(b"\0AUTH EXTERNAL " + HEX_1000 +
                                    b"\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\nl\1\0\1")
    assert error is None
    assert written == b"OK " + b"0" * 32 + b"\r\nERROR unix fd passing is not supported here\r\n"
    assert rest == b"l\1\0\1"


def test_external_without_initial_response_asks_for_data():
    written, error, _ = run_auth(b"\0AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n")
    assert error is None and written == b"DATA\r\nOK " + b"0" * 32 + b"\r\n"


def test_other_mechanisms_are_rejected_then_external_works():
    written, error, _ = run_auth(b"\0AUTH ANONYMOUS 00\r\nAUTH EXTERNAL " + HEX_1000 +
                                 b"\r\nBEGIN\r\n")
    assert error is None and written.startswith(b"REJECTED EXTERNAL\r\nOK ")


@pytest.mark.parametrize(("data", "why"), [
    (b"AUTH EXTERNAL\r\n", "no NUL byte"),
    (b"\0BEGIN\r\n", "BEGIN before AUTH"),
    (b"\0AUTH EXTERNAL " + b"0".hex().encode() + b"\r\n", "claims another uid"),
    (b"\0AUTH " + b"A" * 600, "auth line too long"),
    (b"\0AUTH \xff\r\n", "not ASCII"),
    (b"\0" + b"NOOP\r\n" * 20, "no BEGIN after"),
])
def test_protocol_violations_end_the_handshake(data: bytes, why: str):
    _, error, _ = run_auth(data)
    assert isinstance(error, ProtocolViolation) and why in str(error), error


def test_eof_mid_handshake_is_an_error():
    _, error, _ = run_auth(b"\0AUTH EXTER")
    assert isinstance(error, ProtocolViolation)


def header(endian: bytes, body: int, fields: int, version: int = 1) -> bytes:
    fmt = "<" if endian == b"l" else ">"
    return endian + bytes([1, 0, version]) + struct.pack(f"{fmt}III", body, 1, fields)


def test_message_size_counts_the_padded_fields_and_the_body():
    assert message_size(header(b"l", 10, 13)) == 16 + 16 + 10
    assert message_size(header(b"B", 0, 8)) == 16 + 8


@pytest.mark.parametrize("fixed", [
    header(b"l", MAX_MESSAGE, 8), header(b"x", 0, 8), header(b"l", 0, 8, version=2),
    header(b"l", 0, 2**32 - 1),
])
def test_message_size_refuses_what_is_not_a_small_message(fixed: bytes):
    with pytest.raises(ProtocolViolation):
        message_size(fixed)
