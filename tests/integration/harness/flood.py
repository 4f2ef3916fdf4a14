"""A connection flood, run by an ordinary user inside a real login (stdlib only; this file is
copied to the test's temp dir and run with /usr/bin/python3 -I as that user).

    flood.py fd     SOCKET --conns N --procs P --seconds T
    flood.py memory SOCKET --idle N --half N --slow N --procs P --seconds T
    flood.py deep   SOCKET

fd/memory: P processes open their share of the connections as fast as they can, print
`UP {...}` once all are open, then for T seconds reconnect every connection the daemon drops
(at most --rate per second per process) so the pressure holds; half-written ones send 64 KiB - 1
bytes without a newline, slowloris ones one byte a second. Then all are closed and
`RESULT {...}` is printed. deep: one request of 60 000 `[`, `RESULT` is the answer.
Bounded in count and time; Unix sockets only.
"""

import argparse
import contextlib
import json
import os
import resource
import selectors
import socket
import sys
import time

HALF = 64 * 1024 - 1  # a request line one byte short of MAX_MESSAGE, never finished


def _connect(path: str) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError:
        s.close()
        return None
    s.setblocking(False)
    return s


def _start(kind: str, path: str) -> socket.socket | None:
    s = _connect(path)
    if s is not None and kind == "half":
        s.setblocking(True)
        s.settimeout(2)
        with contextlib.suppress(OSError):
            s.sendall(b'{"method": "status", "pad": "' + b"x" * (HALF - 29))
        s.setblocking(False)
    return s


def worker(path: str, kinds: list[str], seconds: float, rate: float, report: int) -> None:
    stats = {"opened": 0, "dropped_by_daemon": 0, "connect_failed": 0, "notices": 0}
    sel = selectors.DefaultSelector()
    live: dict[int, tuple[socket.socket, str]] = {}

    def open_one(kind: str) -> None:
        s = _start(kind, path)
        if s is None:
            stats["connect_failed"] += 1
            return
        stats["opened"] += 1
        live[s.fileno()] = (s, kind)
        sel.register(s, selectors.EVENT_READ)

    for kind in kinds:
        open_one(kind)
    os.write(report, (json.dumps({"up": stats["opened"]}) + "\n").encode())
    end = time.monotonic() + seconds
    owed: list[str] = []
    next_drip = time.monotonic() + 1
    budget = 0.0
    last = time.monotonic()
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=0.05):
            s, kind = live.pop(key.fd)
            sel.unregister(s)
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if b"limits_exceeded" in data:
                stats["notices"] += 1
            stats["dropped_by_daemon"] += 1
            s.close()
            owed.append(kind)
        now = time.monotonic()
        budget = min(rate, budget + (now - last) * rate)
        last = now
        while owed and budget >= 1:
            budget -= 1
            open_one(owed.pop())
        if now >= next_drip:
            next_drip = now + 1
            for s, kind in list(live.values()):
                if kind == "slow":
                    with contextlib.suppress(OSError):
                        s.send(b" ")
    for s, _ in live.values():
        s.close()
    os.write(report, (json.dumps(stats) + "\n").encode())


def flood(args: argparse.Namespace, kinds: list[str]) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    shares = [kinds[i::args.procs] for i in range(args.procs)]
    pipes = []
    for share in shares:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                worker(args.socket, share, args.seconds, args.rate, w)
            finally:
                os._exit(0)
        os.close(w)
        pipes.append((pid, os.fdopen(r)))
        print(f"PID flood {pid}", flush=True)
    ups = [json.loads(f.readline() or "{}").get("up", 0) for _, f in pipes]
    print("UP " + json.dumps({"opened": sum(ups), "nofile": hard}), flush=True)
    total: dict[str, int] = {}
    for pid, f in pipes:
        for k, v in json.loads(f.readline() or "{}").items():
            total[k] = total.get(k, 0) + v
        os.waitpid(pid, 0)
    print("RESULT " + json.dumps(total), flush=True)


def deep(path: str) -> None:
    s = _connect(path)
    assert s is not None, "cannot connect"
    s.setblocking(True)
    s.settimeout(10)
    s.sendall(b"[" * 60000 + b"\n")
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    print("RESULT " + (data.decode().strip() or '{"closed": true}'), flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("fd", "memory", "deep"))
    p.add_argument("socket")
    p.add_argument("--conns", type=int, default=0)
    p.add_argument("--idle", type=int, default=0)
    p.add_argument("--half", type=int, default=0)
    p.add_argument("--slow", type=int, default=0)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--rate", type=float, default=300)
    args = p.parse_args()
    if args.mode == "deep":
        deep(args.socket)
        return
    if args.mode == "fd":
        kinds = ["idle"] * args.conns
    else:
        kinds = ["idle"] * args.idle + ["half"] * args.half + ["slow"] * args.slow
    flood(args, kinds)


if __name__ == "__main__":
    sys.exit(main())
