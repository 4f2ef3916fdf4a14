"""A login (ssh or su) run as a child process whose output the test reads line by line.

Scripts run in the session print `PID <label> <pid>` for each process they leave behind and
then `READY`; with `hold=True` they then wait for a line on stdin, so the test can inspect the
open session before it ends it with `logout()` (closing stdin).
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import threading
import time
from collections.abc import Sequence

from .procs import Proc, kill_tree

READY = "LOGOUTD-TEST-READY"

# Bash helpers for the session scripts (the test users' and root's shell is bash): wait until a
# background job has really become what it should be, so a logout cannot race its setup.
PRELUDE = (
    # _comm PID NAME: wait until PID has exec'd NAME
    '_comm() { for ((_i = 0; _i < 1000; _i++)); do '
    '[ "$(cat /proc/$1/comm 2>/dev/null)" = "$2" ] && return 0; sleep 0.01; done; return 1; }; '
    # _ign PID MASK: wait until PID ignores the signals in MASK (hex, as in SigIgn)
    '_ign() { for ((_i = 0; _i < 1000; _i++)); do '
    '_m=$(sed -n "s/^SigIgn:[[:space:]]*//p" /proc/$1/status 2>/dev/null); '
    '[ -n "$_m" ] && (( (0x$_m & $2) == $2 )) && return 0; sleep 0.01; done; return 1; }'
)

# Snippets that leave processes behind, each printing "PID <label> <pid>" once it is set up.
LEFTOVERS = {
    # nohup'd job: ignores SIGHUP, exits on SIGTERM.
    "nohup": ('nohup sleep 1000 >/dev/null 2>&1 </dev/null & _p=$!; _comm $_p sleep; '
              'echo "PID nohup $_p"'),
    # double fork + setsid, ignores SIGHUP: leaves the login's process tree and session.
    "daemon": (
        "( setsid sh -c 'trap \"\" HUP; exec sleep 1001' >/dev/null 2>&1 </dev/null & "
        '_p=$!; _comm $_p sleep; echo "PID daemon $_p" )'
    ),
    # stopped (SIGSTOP): a pending SIGTERM only acts once SIGCONT arrives.
    "stopped": ('sleep 1002 >/dev/null 2>&1 </dev/null & _p=$!; _comm $_p sleep; kill -STOP $_p; '
                'until grep -q "^State:.*T" /proc/$_p/status; do sleep 0.01; done; '
                'echo "PID stopped $_p"'),
    # ignores SIGTERM and SIGHUP (mask 0x4001): only SIGKILL ends it.
    "stubborn": (
        "sh -c 'trap \"\" TERM HUP; while :; do sleep 1; done' >/dev/null 2>&1 </dev/null & "
        '_p=$!; _ign $_p 0x4001; echo "PID stubborn $_p"'
    ),
}


def script(*kinds: str, extra: str = "", hold: bool = True) -> str:
    """A session script: start the named leftovers, run `extra`, print READY, maybe wait."""
    parts = [PRELUDE] + [LEFTOVERS[k] for k in kinds]
    if extra:
        parts.append(extra)
    parts.append(f'echo "{READY}"')
    if hold:
        parts.append("read -r _ || true")
    return "; ".join(parts)


class Login:
    """A running ssh/su client; stdout is read by a thread into a queue of lines."""

    def __init__(self, argv: Sequence[str], what: str, env: dict[str, str] | None = None) -> None:
        self.what = what
        self.argv = list(argv)
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.proc = Proc.of(self.popen.pid, what)
        self.lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.pids: dict[str, Proc] = {}
        threading.Thread(target=self._pump, args=(self.popen.stdout, self._queue),
                         daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    @staticmethod
    def _pump(stream, q: queue.Queue[str | None]) -> None:  # type: ignore[no-untyped-def]
        for raw in iter(stream.readline, b""):
            q.put(raw.decode(errors="replace").rstrip("\n"))
        q.put(None)

    def _pump_err(self) -> None:
        assert self.popen.stderr is not None
        for raw in iter(self.popen.stderr.readline, b""):
            self.stderr_lines.append(raw.decode(errors="replace").rstrip("\n"))

    def wait_ready(self, timeout: float = 20.0) -> dict[str, Proc]:
        """Read output up to READY; record every `PID label pid` line as a Proc."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.what}: no {READY} within {timeout:g} s; {self.report()}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.popen.wait(timeout=5)
                raise AssertionError(
                    f"{self.what}: output ended before {READY} (rc {self.popen.returncode}); "
                    f"{self.report()}"
                )
            self.lines.append(line)
            if line == READY:
                return self.pids
            fields = line.split()
            if len(fields) == 3 and fields[0] == "PID":
                self.pids[fields[1]] = Proc.of(int(fields[2]), fields[1])

    def wait_line(self, prefix: str, timeout: float = 20.0) -> str:
        """Read output up to the first line starting with `prefix`; return it (PID lines are
        recorded on the way, as by wait_ready)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.what}: no line {prefix!r} within {timeout:g} s; {self.report()}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"{self.what}: output ended before {prefix!r}; "
                                     f"{self.report()}")
            self.lines.append(line)
            fields = line.split()
            if len(fields) == 3 and fields[0] == "PID":
                self.pids[fields[1]] = Proc.of(int(fields[2]), fields[1])
            if line.startswith(prefix):
                return line

    def logout(self, timeout: float = 20.0) -> int:
        """End the session: close stdin (the held script reads EOF and exits), wait for it."""
        assert self.popen.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.popen.stdin.close()
        return self.wait(timeout, when=f"{timeout:g} s after logout")

    def wait(self, timeout: float = 20.0, when: str = "") -> int:
        """Wait for the client to exit; its exit status."""
        try:
            rc = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            when = when or f"within {timeout:g} s"
            raise AssertionError(f"{self.what}: did not exit {when}; {self.report()}") from None
        self._drain()
        return rc

    def _drain(self) -> None:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                return
            self.lines.append(line)

    def output(self) -> str:
        return "\n".join(self.lines)

    def report(self) -> str:
        return (f"argv={self.argv!r}\nstdout:\n" + "\n".join(self.lines)
                + "\nstderr:\n" + "\n".join(self.stderr_lines))

    def kill(self) -> None:
        """Cleanup: SIGKILL the client and whatever it started that is still its descendant."""
        if self.popen.poll() is None:
            kill_tree(self.proc)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
