"""The HTTP side of `--metrics-listen`: a loopback address, and a minimal HTTP/1.x responder on the
daemon's loop, bounded in connections, bytes and time, so a slow or hostile scraper can hold
neither the loop nor memory. Standard library only: the exposition comes from `render`."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from collections.abc import Callable

from logoutd.errors import InvalidArgument, LogoutdError

log = logging.getLogger("logoutd")

MAX_CONNECTIONS = 8  # a scraper or two, and curl; more are closed at once
DEADLINE = 10.0  # seconds from accept to the last byte sent (Prometheus' default scrape_timeout)
HEAD_MAX = 8192  # bytes of request line and headers
LISTEN_BACKLOG = 16

# (status, content type, body)
Response = tuple[int, str, bytes]
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 500: "Internal Server Error"}
_TEXT = "text/plain; charset=utf-8"
INDEX = b"logoutd: Prometheus metrics at /metrics\n"


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:PORT` for IPv6) as (address, port); the host must be loopback:
    /metrics has no authentication, and names users' programs (see docs/admin-guide.md)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text:
        raise InvalidArgument(f"--metrics-listen {value}: expected HOST:PORT, e.g. 127.0.0.1:9101.")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise InvalidArgument(f"--metrics-listen {value}: an IPv6 address goes in brackets, "
                              "e.g. [::1]:9101.")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidArgument(f"--metrics-listen {value}: port {port_text!r} is not a number "
                              "from 1 to 65535.")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise InvalidArgument(f"--metrics-listen {value}: {host!r} is not an IP address "
                              "(give 127.0.0.1, ::1 or localhost).") from None
    if not address.is_loopback:
        raise InvalidArgument(f"--metrics-listen {value}: {host} is not a loopback address; "
                              "/metrics has no authentication, so logoutd serves it on "
                              "127.0.0.0/8 or ::1 only (see docs/admin-guide.md, Metrics).")
    return str(address), int(port_text)


def listen(value: str) -> socket.socket:
    """Bind and listen now, before the daemon changes anything: a port in use stops the start."""
    host, port = parse_listen(value)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Only lets a restarted daemon bind while the old connections are in TIME_WAIT; on Linux
        # it never lets two listeners share the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise LogoutdError(f"--metrics-listen {value}: address already in use (another "
                               "program listens there); logoutd did not start.") from None
        raise LogoutdError(f"--metrics-listen {value}: cannot listen: {e.strerror}; logoutd "
                           "did not start.") from None
    sock.setblocking(False)
    return sock


class MetricsServer:
    """Answers GET /metrics with `render()`; one request per connection, then close."""

    def __init__(self, sock: socket.socket, render: Callable[[], tuple[bytes, str]], *,
                 max_connections: int = MAX_CONNECTIONS, deadline: float = DEADLINE) -> None:
        self._sock = sock
        self._render = render
        self._max = max_connections
        self._deadline = deadline
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.refused = 0  # connections closed at once: the cap was reached

    @property
    def address(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connected, sock=self._sock, limit=HEAD_MAX)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self._sock.close()

    def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._tasks) >= self._max:
            self.refused += 1
            writer.transport.abort()
            return
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self._deadline):
                head_only, (status, content_type, body) = await self._answer(reader)
                head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                        f"Content-Length: {len(body)}\r\nConnection: close\r\n")
                if status == 405:
                    head += "Allow: GET, HEAD\r\n"
                writer.write(head.encode() + b"\r\n" + (b"" if head_only else body))
                await writer.drain()
                writer.close()
                await writer.wait_closed()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass  # a scraper that went away or took too long: nothing to answer
        finally:
            writer.transport.abort()  # a no-op once closed; else frees the buffer now

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[bool, Response]:
        """(whether to send the head only, the response)."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return False, (431, _TEXT, b"Request head too large.\n")
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return False, (400, _TEXT, b"Not an HTTP/1.x request.\n")
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return False, (405, _TEXT, b"Only GET and HEAD.\n")
        path = target.split("?", 1)[0]
        if path == "/metrics":
            try:
                body, content_type = self._render()
            except Exception:
                log.exception("Internal error rendering /metrics")
                return method == "HEAD", (500, _TEXT, b"Internal error; see logoutd's log.\n")
            return method == "HEAD", (200, content_type, body)
        if path == "/":
            return method == "HEAD", (200, _TEXT, INDEX)
        return method == "HEAD", (404, _TEXT, b"Not found; try /metrics.\n")
