"""The /metrics responder on a real loopback socket: answers, refusals, and a slow or hostile
scraper that holds neither the loop nor more than its share (no root needed)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from logoutd.daemon.metricsserver import MetricsServer, listen, parse_listen
from logoutd.errors import InvalidArgument, LogoutdError

BODY = b"# TYPE up gauge\nup 1\n"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def served(scenario: Callable[[MetricsServer, int], Awaitable[None]], *,
           body: bytes = BODY, **options: float) -> MetricsServer:
    """Run scenario(server, port) on a fresh loop with a server on 127.0.0.1, then close it."""

    async def main() -> MetricsServer:
        server = MetricsServer(_listening(), lambda: (body, CONTENT_TYPE),
                               **options)  # type: ignore[arg-type]
        await server.start()
        try:
            await scenario(server, int(server.address.rsplit(":", 1)[1]))
        finally:
            await server.close()
        return server

    return asyncio.run(main())


def _listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    return sock


async def request(port: int, raw: bytes, timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await reader.read()
    finally:
        writer.close()


def split(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return status, headers, body


def test_get_metrics_answers_with_the_exposition() -> None:
    async def scenario(server: MetricsServer, port: int) -> None:
        status, headers, body = split(await request(
            port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"))
        assert status == "HTTP/1.1 200 OK" and body == BODY
        assert headers["Content-Type"] == CONTENT_TYPE and headers["Connection"] == "close"
        assert headers["Content-Length"] == str(len(BODY))
        status, headers, body = split(await request(port, b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"))
        assert status == "HTTP/1.1 200 OK" and body == b"" and headers["Content-Length"] == str(len(BODY))

    served(scenario)


@pytest.mark.parametrize(("raw", "status"), [
    (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK"),
    (b"GET /other HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
    (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 405 Method Not Allowed"),
    (b"GET /metrics\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    (b"\x16\x03\x01\x00\xa5\r\n\r\n", "HTTP/1.1 400 Bad Request"),  # TLS to a plain port
    (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 10_000 + b"\r\n\r\n",
     "HTTP/1.1 431 Request Header Fields Too Large"),
])
def test_anything_else_gets_one_status_line(raw: bytes, status: str) -> None:
    async def scenario(server: MetricsServer, port: int) -> None:
        assert split(await request(port, raw))[0] == status

    served(scenario)


def test_a_render_error_is_a_500_and_the_server_goes_on() -> None:
    calls = []

    def render() -> tuple[bytes, str]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return BODY, CONTENT_TYPE

    async def main() -> None:
        server = MetricsServer(_listening(), render)
        await server.start()
        port = int(server.address.rsplit(":", 1)[1])
        try:
            status = split(await request(port, b"GET /metrics HTTP/1.1\r\n\r\n"))[0]
            assert status == "HTTP/1.1 500 Internal Server Error"
            assert split(await request(port, b"GET /metrics HTTP/1.1\r\n\r\n"))[2] == BODY
        finally:
            await server.close()

    asyncio.run(main())


def test_a_slow_scraper_is_dropped_at_the_deadline_while_others_are_served() -> None:
    async def scenario(server: MetricsServer, port: int) -> None:
        opened = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\n")  # and never the blank line
        await writer.drain()
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        assert split(await request(port, b"GET /metrics HTTP/1.1\r\n\r\n"))[2] == BODY
        assert time.monotonic() - opened < 2.0 and not reader.at_eof()  # served meanwhile
        async with asyncio.timeout(10):
            assert await reader.read() == b""  # closed by the server at its deadline
        assert time.monotonic() - opened >= 2.0
        assert ticks >= 10  # the loop ran all along
        ticking.cancel()
        writer.close()

    served(scenario, deadline=2.0)


def test_a_scraper_that_never_reads_is_aborted_at_the_deadline() -> None:
    big = b"# a comment line to pad the body\n" * 300_000  # ~10 MB: more than the socket buffers

    async def scenario(server: MetricsServer, port: int) -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        try:
            async with asyncio.timeout(5):
                while server._tasks:  # the connection's task ends at the deadline
                    await asyncio.sleep(0.05)
            assert split(await request(port, b"HEAD /metrics HTTP/1.1\r\n\r\n"))[0].endswith("200 OK")
        finally:
            sock.close()

    served(scenario, body=big, deadline=0.5)


def test_connections_over_the_cap_are_closed_at_once() -> None:
    async def scenario(server: MetricsServer, port: int) -> None:
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        async with asyncio.timeout(5):
            while len(server._tasks) < 2:
                await asyncio.sleep(0.01)
        started = time.monotonic()
        assert await request(port, b"GET /metrics HTTP/1.1\r\n\r\n") == b""
        assert time.monotonic() - started < 0.5 and server.refused == 1
        for reader, writer in idle:  # once they time out, there is room again
            async with asyncio.timeout(5):
                assert await reader.read() == b""
            writer.close()
        assert split(await request(port, b"GET /metrics HTTP/1.1\r\n\r\n"))[2] == BODY

    served(scenario, max_connections=2, deadline=1.0)


@pytest.mark.parametrize(("value", "address"), [
    ("127.0.0.1:9101", ("127.0.0.1", 9101)),
    ("localhost:9101", ("127.0.0.1", 9101)),
    ("127.3.2.1:1", ("127.3.2.1", 1)),
    ("[::1]:65535", ("::1", 65535)),
])
def test_loopback_addresses_are_accepted(value: str, address: tuple[str, int]) -> None:
    assert parse_listen(value) == address


@pytest.mark.parametrize(("value", "why"), [
    ("0.0.0.0:9101", "0.0.0.0 is not a loopback address"),
    ("192.168.1.10:9101", "192.168.1.10 is not a loopback address"),
    ("[::]:9101", ":: is not a loopback address"),
    ("example.com:9101", "'example.com' is not an IP address"),
    ("9101", "expected HOST:PORT"),
    (":9101", "expected HOST:PORT"),
    ("127.0.0.1:", "expected HOST:PORT"),
    ("127.0.0.1:0", "port '0' is not a number from 1 to 65535"),
    ("127.0.0.1:70000", "port '70000' is not a number"),
    ("127.0.0.1:http", "port 'http' is not a number"),
    ("::1:9101", "an IPv6 address goes in brackets"),
])
def test_anything_else_is_refused_in_one_line(value: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        parse_listen(value)
    assert e.value.message.startswith(f"--metrics-listen {value}: ") and why in e.value.message
    assert "\n" not in e.value.message


def test_a_port_in_use_is_one_line() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        with pytest.raises(LogoutdError) as e:
            listen(f"127.0.0.1:{port}")
    assert e.value.message == (f"--metrics-listen 127.0.0.1:{port}: address already in use "
                               "(another program listens there); logoutd did not start.")


def test_without_prometheus_client_the_option_is_one_line_and_changes_nothing(tmp_path: Path) -> None:
    script = f"""
import sys
sys.modules["prometheus_client"] = None  # as if logoutd[metrics] were not installed
from logoutd.daemon.main import main
raise SystemExit(main(["--cgroup-root", {str(tmp_path)!r}, "--runtime-dir", {str(tmp_path / "run")!r},
                       "--state-dir", {str(tmp_path / "state")!r}, "--metrics-listen", "127.0.0.1:9101"]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(
        "logoutd: --metrics-listen needs the prometheus_client package ("), done.stderr
    assert done.stderr.endswith("): pip install 'logoutd[metrics]'\n")
    assert list(tmp_path.iterdir()) == []
