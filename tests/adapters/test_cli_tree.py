"""The process tree of session-status/user-status, drawn as systemd-cgls draws it, over a
directory shaped like a cgroup subtree holding real processes."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from logoutd.cli import cgls
from logoutd.cli.output import Output

P = cgls.PREFIX


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started = [
        subprocess.Popen(["sleep", "1000"]),
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)", "a b", 'x"$']),
        subprocess.Popen(["sleep", "1001"]),
        subprocess.Popen(["sleep", "1002"]),
    ]
    for p in started:  # Popen may return while the kernel is still inside execve()
        deadline = time.monotonic() + 5
        while (cgls.cmdline(p.pid) or "[").startswith("[") and time.monotonic() < deadline:
            time.sleep(0.01)
    try:
        yield started
    finally:
        for p in started:
            p.kill()
            p.wait()


def _cgroup(path: Path, *pids: int) -> None:
    path.mkdir(parents=True)
    (path / "cgroup.procs").write_text("".join(f"{pid}\n" for pid in pids))
    (path / "cgroup.events").write_text(f"populated {int(bool(pids))}\nfrozen 0\n")


def _line(pid: int, width: int, text: str) -> str:
    return f"{pid:>{width}} {text}"


def test_tree_layout(tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    a, b, c, outside = (p.pid for p in procs)
    _cgroup(tmp_path / "s.scope", b, a)
    _cgroup(tmp_path / "s.scope/sub", c)
    _cgroup(tmp_path / "s.scope/empty")
    w = len(str(max(a, b)))
    py = f'{sys.executable} -c "import time; time.sleep(1000)" "a b" "x\\"\\$"'
    first, second = sorted([(a, "sleep 1000"), (b, py)])
    output = Output(io.StringIO())
    assert cgls.tree(output, tmp_path, "s.scope", extra=(a, outside)) == [
        f"{P}├─{_line(first[0], w, first[1])}",
        f"{P}├─{_line(second[0], w, second[1])}",
        f"{P}└─sub",
        f"{P}  └─{_line(c, len(str(c)), 'sleep 1001')}",
        f"{P}‣ {_line(outside, len(str(outside)), 'sleep 1002')}",
    ]
    # -a shows empty cgroups too.
    assert f"{P}├─empty" in cgls.tree(output, tmp_path, "s.scope", show_all=True)
    listed = cgls.processes(tmp_path, "s.scope")
    assert [(p.pid, p.cgroup) for p in listed] == [
        (first[0], "s.scope"), (second[0], "s.scope"), (c, "s.scope/sub")]


def test_tree_colour_and_ellipsis(tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    _cgroup(tmp_path / "s.scope", procs[1].pid)
    [line] = cgls.tree(Output(io.StringIO(), colour=True, width=40), tmp_path, "s.scope")
    assert line.startswith(f"{P}└─\x1b[0;38;5;245m{procs[1].pid} ") and line.endswith("…\x1b[0m")
    visible = line.removeprefix(P).replace("\x1b[0;38;5;245m", "").replace("\x1b[0m", "")
    assert cgls.PREFIX_COLUMNS + len(visible) == 40


def test_vanished_cgroup_and_processes(tmp_path: Path) -> None:
    assert cgls.tree(Output(io.StringIO()), tmp_path, "gone.scope") == []
    _cgroup(tmp_path / "s.scope", 2**22 + 7)  # no such pid: skipped, as a race
    assert cgls.tree(Output(io.StringIO()), tmp_path, "s.scope") == []
