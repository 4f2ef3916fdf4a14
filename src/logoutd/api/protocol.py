"""Wire format: one JSON object per line, named fields, versioned; limits for hostile peers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from logoutd.errors import LogoutdError, ProtocolError

VERSION = 1
MAX_MESSAGE = 64 * 1024  # bytes per request line, newline included
ANSWER_TIMEOUT = 5.0  # seconds a client may take to read an answer before it is dropped
IDLE_TIMEOUT = 60.0  # seconds a connection may take to send its next complete request line
# (the whole line, however it is dribbled: a byte every 59 s is cut at IDLE_TIMEOUT too)


@dataclass(frozen=True)
class Request:
    method: str
    params: dict[str, Any]
    id: Any = None


def decode_request(line: bytes) -> Request:
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(f"Malformed request: not JSON ({e}).") from None
    except RecursionError:
        raise ProtocolError("Malformed request: nested too deeply.") from None
    except Exception as e:  # whatever else the decoder raises is still the peer's bad input
        raise ProtocolError(f"Malformed request: {type(e).__name__}.") from None
    if not isinstance(message, dict):
        raise ProtocolError("Malformed request: expected a JSON object.")
    if message.get("v", VERSION) != VERSION:
        raise ProtocolError(f"Unsupported protocol version {message.get('v')!r}; this is {VERSION}.")
    method = message.get("method")
    if not isinstance(method, str):
        raise ProtocolError("Malformed request: 'method' must be a string.")
    params = message.get("params", {})
    if not isinstance(params, dict):
        raise ProtocolError("Malformed request: 'params' must be an object.")
    return Request(method, params, message.get("id"))


def encode_request(method: str, params: dict[str, Any]) -> bytes:
    return json.dumps({"v": VERSION, "method": method, "params": params}).encode() + b"\n"


def encode_result(result: dict[str, Any], request_id: Any = None) -> bytes:
    answer: dict[str, Any] = {"v": VERSION, "ok": True, "result": result}
    if request_id is not None:
        answer["id"] = request_id
    return json.dumps(answer).encode() + b"\n"


def encode_error(error: LogoutdError, request_id: Any = None) -> bytes:
    answer: dict[str, Any] = {
        "v": VERSION,
        "ok": False,
        "error": {"code": error.code, "message": error.message},
    }
    if request_id is not None:
        answer["id"] = request_id
    return json.dumps(answer).encode() + b"\n"
