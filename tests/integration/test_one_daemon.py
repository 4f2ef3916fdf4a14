"""A second logoutd on the same runtime dir refuses with one line and changes nothing; the
first keeps answering on both sockets (issue 13, item 1)."""

from __future__ import annotations

import os
import subprocess

from logoutd.api.client import Client
from tests.integration.harness.daemon import Daemon, src_dir


def _second(daemon: Daemon, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(src_dir()))
    env.pop("LOGOUTD_CRASH_AT", None)
    env.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
    return subprocess.run([*daemon.argv(), *extra], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30)


def test_a_second_daemon_is_refused_and_the_first_still_answers(daemon: Daemon) -> None:
    assert daemon.popen is not None
    watched = [daemon.socket, daemon.root_socket, daemon.runtime_dir / "cgroup-root"]
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in watched}
    state_before = sorted(os.listdir(daemon.state_dir))

    second = _second(daemon)
    assert second.returncode != 0, second
    assert second.stdout == ""
    assert second.stderr.count("\n") == 1, second.stderr
    assert second.stderr.startswith(f"logoutd: runtime dir {daemon.runtime_dir} "), second.stderr
    assert f"is already taken by logoutd pid {daemon.popen.pid}: refusing to start." \
        in second.stderr

    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in watched} == before
    assert sorted(os.listdir(daemon.state_dir)) == state_before
    assert daemon.running()
    for path in (daemon.socket, daemon.root_socket):
        with Client(path, timeout=5.0) as client:
            assert client.call("status")["sessions"] == 0


def test_a_second_daemon_on_another_runtime_dir_cannot_take_the_socket(daemon: Daemon) -> None:
    inode = daemon.socket.stat().st_ino
    other = daemon.base / "other-run"
    argv = daemon.argv()
    i = argv.index("--runtime-dir")
    argv[i + 1] = str(other)
    env = dict(os.environ, PYTHONPATH=str(src_dir()))
    env.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
    second = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=30)
    assert second.returncode != 0, second
    assert f"socket {daemon.socket} is already taken by a running server" in second.stderr
    assert daemon.socket.stat().st_ino == inode
    with Client(daemon.socket, timeout=5.0) as client:
        assert client.call("status")["sessions"] == 0
