"""A private system bus per test: `dbus-daemon` on `<tmp>/system_bus_socket`.

The machine's own system bus (/run/dbus/system_bus_socket) is never used.  The bus has the stock
system bus' default policy and includes /usr/share/dbus-1/system.d, so the stock
org.freedesktop.login1.conf applies (root may own org.freedesktop.login1 and call
CreateSession; other users may call Get*/List*/Terminate*/Kill*).  It has no service
directories: a call to a name nobody owns fails at once instead of trying activation.  It runs
as root (no <user>), in the foreground (no <fork>).

`BusMonitor` records the bus' traffic (`dbus-monitor --monitor`, root only), so a test can check
what a stock client (pam_systemd, loginctl) really sent and what it was answered.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cleanup import Cleanup, Phase
from .procs import Proc, signal_proc, wait_for

DBUS_DAEMON = "dbus-daemon"
SYSTEM_D = Path("/usr/share/dbus-1/system.d")

# /usr/share/dbus-1/system.conf's policies (dbus 1.14), copied verbatim.
POLICY = """\
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus" />
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Containers1"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.DBus.Debug.Stats"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
"""


def config_text(socket: Path) -> str:
    return f"""\
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<!-- logoutd integration test: a private system bus (removed after the test) -->
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path={socket}</listen>
{POLICY}
  <includedir>{SYSTEM_D}</includedir>
</busconfig>
"""


def available() -> str | None:
    """None if a private bus can be started here and stock clients pointed at it, else why not."""
    if shutil.which(DBUS_DAEMON) is None:
        return "dbus-daemon not installed"
    if not (SYSTEM_D / "org.freedesktop.login1.conf").exists():
        return f"{SYSTEM_D}/org.freedesktop.login1.conf missing (systemd's bus policy)"
    if not RUN_SYSTEMD.is_dir():
        # The tmpfs that makes pam_systemd/loginctl believe logind runs is mounted on it, in a
        # private mount namespace; creating it on the real file system is not the tests' call.
        return f"{RUN_SYSTEMD} does not exist"
    return None


RUN_SYSTEMD = Path("/run/systemd")
RUN_DBUS = Path("/run/dbus")


def namespace_prefix(bus: PrivateBus, *, booted: bool = False) -> str:
    """Shell commands pointing stock systemd clients at `bus`, only valid inside
    `unshare --mount --propagation private`; nothing changes outside that namespace.

    - a tmpfs on /run/systemd with seats/ in it: pam_systemd talks to logind only if
      /run/systemd/seats/ exists; with `booted`, also system/ (sd_booted(), which loginctl
      insists on).  The machine's real /run/systemd is hidden from the namespace.
    - if /run/dbus exists, a tmpfs on it with system_bus_socket -> the private socket: a setuid
      program started by a user (su) ignores DBUS_SYSTEM_BUS_ADDRESS (secure_getenv), so this is
      the only way its pam_systemd reaches the private bus.  It also hides a real system bus.
    """
    dirs = "/run/systemd/seats" + (" /run/systemd/system" if booted else "")
    steps = [f"mount -t tmpfs -o mode=0755 logoutd-test {RUN_SYSTEMD}", f"mkdir {dirs}"]
    if RUN_DBUS.is_dir():
        steps += [f"mount -t tmpfs -o mode=0755 logoutd-test {RUN_DBUS}",
                  f"ln -s {shlex.quote(str(bus.socket))} {RUN_DBUS}/system_bus_socket"]
    return " && ".join(steps)


def setuid_programs_reach(bus: PrivateBus) -> bool:
    """Whether `namespace_prefix` makes the default system bus path lead to `bus`."""
    return RUN_DBUS.is_dir()


@dataclass
class PrivateBus:
    """A dbus-daemon of type system on a socket in `tmp`; `start()` returns once it is ready."""

    tmp: Path
    name: str = "system_bus"
    popen: subprocess.Popen[bytes] | None = None
    proc: Proc | None = None
    address: str = ""
    _monitors: list[BusMonitor] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.socket = self.tmp / f"{self.name}_socket"
        self.config = self.tmp / f"{self.name}.conf"
        self.log = self.tmp / f"{self.name}.log"

    def start(self, timeout: float = 10.0) -> None:
        self.config.write_text(config_text(self.socket))
        self.config.chmod(0o644)
        read_fd, write_fd = os.pipe()
        try:
            with open(self.log, "ab") as log:
                self.popen = subprocess.Popen(
                    [DBUS_DAEMON, "--nofork", f"--print-address={write_fd}", "--nopidfile",
                     f"--config-file={self.config}"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(write_fd,),
                )
            os.close(write_fd)
            write_fd = -1
            self.proc = Proc.of(self.popen.pid, "dbus-daemon")
            printed = _read_line(read_fd, timeout)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        if not printed:
            self.stop()
            raise RuntimeError(f"dbus-daemon did not print its address; log:\n{self.log_text()}")
        # dbus-daemon prints "unix:path=...,guid=..."; clients want the plain path form.
        self.address = f"unix:path={self.socket}"
        assert str(self.socket) in printed, (printed, self.socket)
        self.socket.chmod(0o777)  # it is already; test users must be able to connect

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL; reap; remove the socket (dbus-daemon leaves it behind)."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        for path in (self.socket, self.config):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def busctl(self, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        """`busctl --address=<this bus> ARGS` as root."""
        return subprocess.run(["busctl", f"--address={self.address}", *args],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    def name_owner_pid(self, name: str) -> int | None:
        """The pid of the connection owning `name`, None if nobody owns it."""
        r = self.busctl("call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                        "org.freedesktop.DBus", "GetConnectionUnixProcessID", "s", name)
        if r.returncode != 0:
            return None
        kind, _, value = r.stdout.strip().partition(" ")
        assert kind == "u", r
        return int(value)

    def env(self) -> dict[str, str]:
        """The variables a client needs to use this bus as its system bus."""
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.address}

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def monitor(self, cleanup: Cleanup) -> BusMonitor:
        """Start recording every message on the bus (until the test's cleanup)."""
        mon = BusMonitor(self, self.tmp / f"{self.name}-monitor{len(self._monitors)}.log")
        self._monitors.append(mon)
        cleanup.add(Phase.PROCESSES, "kill dbus-monitor", mon.stop)
        mon.start()
        return mon



def _read_line(fd: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


@dataclass
class BusMonitor:
    """`dbus-monitor --monitor` on a private bus, its output in a file."""

    bus: PrivateBus
    path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        with open(self.path, "ab") as out:
            self.popen = subprocess.Popen(
                ["dbus-monitor", "--address", self.bus.address, "--monitor"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )
        # It prints the NameAcquired signal for its own unique name once it is monitoring.
        wait_for(lambda: "member=NameLost" in self.text() or "NameAcquired" in self.text(),
                 timeout, "dbus-monitor to start", details=self.text)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)

    def text(self) -> str:
        return self.path.read_text(errors="replace") if self.path.exists() else ""

    def messages(self) -> list[Recorded]:
        """Every recorded message, parsed."""
        out: list[Recorded] = []
        for line in self.text().splitlines():
            if line and not line[0].isspace():
                kind, _, rest = line.partition(" time=")
                fields = dict(_FIELD.findall(rest))
                out.append(Recorded(kind, fields, []))
            elif out and line.strip():
                out[-1].body.append(line.strip())
        return out

    def calls(self, member: str, **match: str) -> list[Recorded]:
        """Method calls of `member` whose header fields equal `match` (e.g. interface=...)."""
        return [m for m in self.messages() if m.kind == "method call"
                and m.fields.get("member") == member
                and all(m.fields.get(k) == v for k, v in match.items())]

    def reply_to(self, call: Recorded) -> Recorded | None:
        """The method return or error answering `call`, if recorded yet."""
        for m in self.messages():
            if (m.kind in ("method return", "error")
                    and m.fields.get("reply_serial") == call.fields.get("serial")
                    and m.fields.get("destination") == call.fields.get("sender")):
                return m
        return None

    def wait_reply(self, call: Recorded, timeout: float = 10.0) -> Recorded:
        reply = wait_for(lambda: self.reply_to(call), timeout, f"the reply to {call}",
                         details=lambda: self.text()[-6000:])
        assert reply is not None
        return reply

    def wait_calls(self, member: str, timeout: float = 10.0,
                   where: Callable[[Recorded], bool] = lambda m: True,
                   **match: str) -> list[Recorded]:
        return wait_for(lambda: [m for m in self.calls(member, **match) if where(m)], timeout,
                        f"dbus-monitor to see a {member} call {match or ''}",
                        details=lambda: self.text()[-6000:])


_FIELD = re.compile(r"(\w+)=([^\s;]*)")


@dataclass
class Recorded:
    """One message as dbus-monitor printed it: kind ("method call", "method return", "error",
    "signal"), header fields (sender, destination, serial, reply_serial, path, interface, member,
    error_name) and the body lines (e.g. 'string "su-l"', 'uint32 1004')."""

    kind: str
    fields: dict[str, str]
    body: list[str]

    def strings(self) -> list[str]:
        """The body's string values, in order."""
        return [line[len('string "'):-1] for line in self.body if line.startswith('string "')]

    def uint32s(self) -> list[int]:
        return [int(line.split()[1]) for line in self.body if line.startswith("uint32 ")]

    def __str__(self) -> str:
        return f"{self.kind} {self.fields} {self.body}"


CLIENT = Path(__file__).resolve().parent / "login1_client.py"


class Client:
    """A running `login1_client.py` (root, dbus-fast) on a private bus; see its docstring.

    Its stdout is JSON lines, read by a thread; `kill()` is registered with the test's cleanup.
    """

    def __init__(self, bus: PrivateBus, cleanup: Cleanup, mode: str, *args: str) -> None:
        self.what = f"login1 client {mode} {' '.join(args)}"
        self.popen = subprocess.Popen(
            [sys.executable, str(CLIENT), bus.address, mode, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, **bus.env()},
        )
        self.proc = Proc.of(self.popen.pid, "login1 client")
        cleanup.add(Phase.PROCESSES, f"kill {self.what}", self.kill)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.stderr_lines: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for raw in iter(self.popen.stdout.readline, b""):
            self._lines.put(raw.decode(errors="replace"))
        self._lines.put(None)

    def _pump_err(self) -> None:
        assert self.popen.stderr is not None
        for raw in iter(self.popen.stderr.readline, b""):
            self.stderr_lines.append(raw.decode(errors="replace").rstrip("\n"))

    def read(self, timeout: float = 15.0) -> dict[str, Any]:
        """The next JSON line; fails if the client exits or says nothing within `timeout`."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.what}: no output within {timeout:g} s") from None
        if line is None:
            self.popen.wait(timeout=5)
            time.sleep(0.1)  # let the stderr thread catch up
            raise AssertionError(f"{self.what}: exited ({self.popen.returncode}) without output;"
                                 " stderr:\n" + "\n".join(self.stderr_lines))
        result: dict[str, Any] = json.loads(line)
        return result

    def send(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line.encode() + b"\n")
        self.popen.stdin.flush()

    def close(self, timeout: float = 10.0) -> int:
        """Close its stdin: it disconnects and exits."""
        assert self.popen.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.popen.stdin.close()
        return self.popen.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL it (by pid, if it is still the same process) and reap it."""
        if self.popen.poll() is None:
            signal_proc(self.proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
