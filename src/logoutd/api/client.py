"""A small synchronous client for logoutctl and tests."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from logoutd.api.protocol import MAX_MESSAGE, encode_request
from logoutd.errors import NotRunning, ProtocolError, error_from_wire
from logoutd.paths import DEFAULT_SOCKET

ROOT_SOCKET_NAME = "root.sock"
START_HINT = ("Start it as root through the init system (`systemctl start logoutd`, "
              "`rc-service logoutd start`) or by hand (`logoutd`); see docs/install.md.")


def default_socket(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("LOGOUTD_SOCKET") or DEFAULT_SOCKET)


def choose_socket(explicit: Path | str | None = None, env: Mapping[str, str] | None = None,
                  euid: int | None = None) -> Path:
    """The socket to talk to: the api socket (`explicit`, else $LOGOUTD_SOCKET, else the
    default), except that root takes the root-only `root.sock` beside it when that exists,
    the path no user can fill."""
    api = Path(explicit) if explicit else default_socket(env)
    if (os.geteuid() if euid is None else euid) == 0:
        root = api.parent / ROOT_SOCKET_NAME
        if root.exists():
            return root
    return api


class Client:
    def __init__(self, path: Path | str | None = None, timeout: float = 10.0) -> None:
        self.path = Path(path) if path is not None else choose_socket()
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            sock.settimeout(self.timeout)
            try:
                sock.connect(str(self.path))
            except FileNotFoundError as e:
                sock.close()
                raise NotRunning(f"logoutd is not running (no socket at {self.path}: "
                                 f"{e.strerror}).") from None
            except ConnectionRefusedError:
                sock.close()
                # The file outlived its daemon (killed, or crashed): a start replaces it.
                raise NotRunning(f"logoutd is not running ({self.path} is left from a daemon "
                                 f"that stopped). {START_HINT}") from None
            except OSError as e:
                sock.close()
                raise NotRunning(f"Cannot reach logoutd at {self.path}: {e.strerror or e}.") from None
            self._sock = sock
        return self._sock

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        sock = self._connect()
        try:
            sock.sendall(encode_request(method, params))
            while b"\n" not in self._buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    self.close()  # the next call connects anew (e.g. to a restarted daemon)
                    raise NotRunning(f"logoutd closed the connection ({self.path}).")
                self._buffer += chunk
                if len(self._buffer) > 64 * MAX_MESSAGE * 16:
                    raise ProtocolError("Answer too large.")
        except TimeoutError:
            self.close()
            raise NotRunning(f"logoutd did not answer within {self.timeout:g} s ({self.path}).") \
                from None
        except OSError as e:
            self.close()
            raise NotRunning(f"Lost connection to logoutd at {self.path}: {e}.") from None
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer = json.loads(line)
        if answer.get("ok"):
            result: dict[str, Any] = answer.get("result", {})
            return result
        error = answer.get("error", {})
        raise error_from_wire(str(error.get("code", "failed")), str(error.get("message", "")))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._buffer = b""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
