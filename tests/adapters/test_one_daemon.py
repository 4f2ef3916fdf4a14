"""One daemon per runtime dir: the lock, the refusal's one line, a stale socket replaced, bad paths."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from logoutd.api.server import ApiServer
from logoutd.api.service import DaemonInfo, Service
from logoutd.daemon.lock import AlreadyRunning, runtime_lock
from logoutd.daemon.main import main
from logoutd.errors import LogoutdError
from tests.unit.conftest import make_core


def _server(path: Path) -> ApiServer:
    info = DaemonInfo(reload=lambda: {}, config_files=lambda: [], cgroup_root="/x")
    return ApiServer(Service(make_core().manager, info), path)


def test_the_lock_is_held_for_the_block_and_names_the_holder(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    with runtime_lock(runtime) as path:
        assert path.read_text() == f"{os.getpid()}\n"
        # flock belongs to the open file: a second open in this process is refused as well.
        with pytest.raises(AlreadyRunning) as raised, runtime_lock(runtime):
            pass
        assert raised.value.message == (
            f"runtime dir {runtime} ({path}) is already taken by logoutd pid {os.getpid()}: "
            "refusing to start. Stop that logoutd first, or give this one another --runtime-dir.")
    with runtime_lock(runtime):  # released at the end of the block
        pass


def test_a_second_daemon_prints_one_line_and_changes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runtime = tmp_path / "run"
    with runtime_lock(runtime):
        stale = runtime / "api.sock"
        stale.write_text("not touched")
        before = sorted(p.name for p in runtime.iterdir())
        (tmp_path / "cg").mkdir()  # exists: a missing --cgroup-root is refused before the lock
        status = main(["--root", str(tmp_path / "etc"), "--cgroup-root", str(tmp_path / "cg"),
                       "--runtime-dir", str(runtime), "--state-dir", str(tmp_path / "state"),
                       "--user-runtime-root", str(tmp_path / "user")])
        assert status == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"logoutd: runtime dir {runtime} ")
        assert f"logoutd pid {os.getpid()}: refusing to start." in err
        assert sorted(p.name for p in runtime.iterdir()) == before
        assert stale.read_text() == "not touched"
        assert not (tmp_path / "state").exists()


def test_a_socket_in_a_missing_directory_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--cgroup-root", str(tmp_path), "--runtime-dir", str(tmp_path / "run"),
                   "--socket", str(tmp_path / "nowhere" / "api.sock")])
    assert status == 1
    assert capsys.readouterr().err == (
        f"logoutd: --socket {tmp_path}/nowhere/api.sock: directory {tmp_path}/nowhere does "
        "not exist.\n")
    assert not (tmp_path / "run").exists()


def test_a_stale_socket_is_replaced_and_a_live_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nothing listens: ECONNREFUSED

    async def scenario() -> None:
        first = _server(path)
        await first.start()
        inode = path.stat().st_ino
        second = _server(path)
        with pytest.raises(LogoutdError) as raised:
            await second.start()
        assert raised.value.message.startswith(f"socket {path} is already taken by ")
        assert path.stat().st_ino == inode
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(path))  # the first still answers
        client.close()
        await first.close()

    asyncio.run(scenario())


def test_a_runtime_dir_that_is_a_file_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "run").write_text("")
    status = main(["--cgroup-root", str(tmp_path), "--runtime-dir", str(tmp_path / "run")])
    assert status == 1
    assert capsys.readouterr().err == f"logoutd: --runtime-dir {tmp_path}/run: not a directory.\n"
