"""`logoutctl reload` over the real Runtime.reload (real files under a tmp --root), and
`logoutd --check-config` on clean and broken trees: what they print and their exit status."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from logoutd.cli.ctl import main as ctl_main
from logoutd.config import KillMode, load_config
from logoutd.daemon.main import main as logoutd_main
from logoutd.daemon.runtime import Runtime
from logoutd.paths import Paths
from logoutd.system.audit import audit_path_problem
from tests.adapters.conftest import Served, ctl, serving

MAIN = "etc/systemd/logind.conf"


def write(root: Path, text: str, rel: str = MAIN) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def reloading(tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    """The in-process server whose reload is Runtime.reload reading files under ROOT."""
    root = tmp_path / "root"
    root.mkdir()
    paths = Paths(root=root, runtime_dir=tmp_path / "run", state_dir=tmp_path / "state",
                  user_runtime_root=tmp_path / "user")
    with serving(tmp_path) as served:
        runtime = Runtime(paths, load_config(root))
        service = served.server.service
        service.info = dataclasses.replace(service.info, reload=lambda: runtime.reload(service.manager))
        try:
            yield served, root
        finally:
            runtime.audit.close()


def test_reload_of_a_clean_file_prints_nothing_and_exits_0(reloading: tuple[Served, Path]) -> None:
    served, root = reloading
    write(root, "[Login]\nKillUserProcesses=no\n")
    assert ctl(served, "reload") == (0, "", "")
    assert served.core.manager.config.kill_user_processes is KillMode.NO


def test_reload_after_the_permisive_typo_says_so_and_exits_16(reloading: tuple[Served, Path]) -> None:
    served, root = reloading
    conf = write(root, "[Login]\nKillUserProcesses=permisive\nKillExcludeUsers=alice\n")
    rc, out, err = ctl(served, "reload")
    assert rc == 16 and out == ""
    warning, final = err.splitlines()
    assert warning == (
        f"{conf}:2: KillUserProcesses=permisive: Failed to parse KillUserProcesses= value, ignoring: "
        "permisive; accepted: yes, no or permissive (also 1/0, true/false, on/off, y/n, t/f). "
        "KillUserProcesses=yes (the default) stays in effect."
    )
    assert final == ("Reloaded, but with 1 warning about ignored lines (see above); the valid lines "
                     "apply, and each warning says which value stays in effect.")
    config = served.core.manager.config
    assert config.kill_user_processes is KillMode.YES  # logind's rule: the previous value stays
    assert config.kill_exclude_users == ("alice",)  # and the valid line applied


def test_reload_json_carries_the_warnings_and_the_count(reloading: tuple[Served, Path]) -> None:
    served, root = reloading
    write(root, "[Login]\nKillUserProcesses=permisive\n[Logind]\nX=1\n")
    rc, out, _ = ctl(served, "reload", "--json")
    assert rc == 16
    document = json.loads(out)["reload"]
    assert document["reloaded"] is True and document["ignored"] == 2
    assert "Did you mean [Login]?" in document["warnings"][1]


@pytest.mark.parametrize("kind", ["directory", "missing parent", "symlink"])
def test_reload_reports_a_bad_audit_log_path(reloading: tuple[Served, Path], tmp_path: Path,
                                             kind: str) -> None:
    served, root = reloading
    target = tmp_path / "audit.jsonl"
    if kind == "directory":
        target.mkdir()
    elif kind == "missing parent":
        target = tmp_path / "nowhere" / "audit.jsonl"
    else:
        (tmp_path / "elsewhere").write_text("")
        target.symlink_to(tmp_path / "elsewhere")
    conf = write(root, f"[Logoutd]\nAuditLog={target}\n")
    rc, _, err = ctl(served, "reload")
    assert rc == 16
    problem = {"directory": "it is a directory", "symlink": "it is a symbolic link",
               "missing parent": f"its directory {tmp_path / 'nowhere'} does not exist"}[kind]
    assert err.startswith(f"{conf}:2: AuditLog={target}: AuditLog= path unusable: {problem}")
    if kind == "symlink":
        assert (tmp_path / "elsewhere").read_text() == ""  # the link's target was not written


def test_reload_that_fails_keeps_exit_1(reloading: tuple[Served, Path]) -> None:
    served, root = reloading
    write(root, "[Login\n")
    rc, _, err = ctl(served, "reload")
    assert rc == 1 and "Reload failed, logoutd keeps its previous configuration" in err


# --- logoutd --check-config -------------------------------------------------------------------


def check(root: Path, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    saved, sys.stdout = sys.stdout, out
    try:
        rc = logoutd_main(["--check-config", "--root", str(root), *extra])
    finally:
        sys.stdout = saved
    return rc, out.getvalue()


def test_check_config_on_a_clean_tree(tmp_path: Path) -> None:
    write(tmp_path, "[Login]\nKillUserProcesses=permissive\n")
    write(tmp_path, "[Logoutd]\nAuditLog=\n", "etc/systemd/logind.conf.d/50-a.conf")
    assert check(tmp_path) == (0, "2 files read; every line parsed.\n")
    rc, out = check(tmp_path, "--json")
    document = json.loads(out)
    assert rc == 0 and document["ok"] is True and document["warnings"] == []


def test_check_config_without_files(tmp_path: Path) -> None:
    assert check(tmp_path) == (0, "No configuration file found; the compiled-in defaults apply.\n")


def test_check_config_on_a_broken_tree_changes_nothing(tmp_path: Path) -> None:
    main = write(tmp_path, "[Login]\nKillUserProcesses=permisive\n[Logoutd]\n"
                           f"AuditLog={tmp_path}/missing/audit.jsonl\n")
    dropin = write(tmp_path, "[Policy]\nKeepAllowUser=alice\n[Seat]\n",
                   "etc/systemd/logind.conf.d/50-a.conf")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    rc, out = check(tmp_path)
    lines = out.splitlines()
    assert rc == 16
    assert [line.split(": ", 1)[0] for line in lines[:-1]] == [f"{main}:2", f"{dropin}:2", f"{dropin}:3",
                                                              f"{main}:4"]
    assert lines[-1] == "2 files read; 4 warnings about ignored lines, the valid lines apply."
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    rc, out = check(tmp_path, "--json")
    document = json.loads(out)
    assert rc == 16 and document["ok"] is False and document["ignored"] == 4
    assert [(w["key"], w["value"]) for w in document["warnings"]][:2] == [
        ("KillUserProcesses", "permisive"), ("KeepAllowUser", "alice")]


def test_check_config_fatal_exits_1(tmp_path: Path) -> None:
    write(tmp_path, "[Login]\nKillUserProcesses=no\n[Login\n")
    write(tmp_path, "[Login]\nKillUserProcesses=permisive\n", "etc/systemd/logind.conf.d/50-a.conf")
    rc, out = check(tmp_path)
    assert rc == 1
    assert out.splitlines()[-2].endswith(":3: Invalid section header '[Login'")
    assert "every later file are not used" in out.splitlines()[-1]


def test_check_config_as_a_user_without_a_daemon(tmp_path: Path) -> None:
    """No root, no socket: a plain subprocess as nobody reads a world-readable tree."""
    root = Path(tempfile.mkdtemp(prefix="logoutd-test-"))  # pytest's tmp_path is 0700 root's
    write(root, "[Login]\nKillUserProcesses=maybe\n")
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    code = "from logoutd.daemon.main import main; raise SystemExit(main())"
    python = "/usr/bin/python3"  # the venv's interpreter lives under /root, closed to nobody
    if not os.access(python, os.X_OK):
        pytest.skip("no system python3 for uid 65534")
    command = [python, "-c", code, "--check-config", "--root", str(root)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, user=65534,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")})
    shutil.rmtree(root)
    assert done.returncode == 16, done.stdout + done.stderr
    assert "KillUserProcesses=maybe" in done.stdout and done.stderr == ""


def test_logoutctl_check_config_needs_no_daemon(tmp_path: Path) -> None:
    conf = write(tmp_path, "[Login]\nKillUserProcesses=permisive\n")
    out, err = io.StringIO(), io.StringIO()
    nowhere = {"LOGOUTD_SOCKET": str(tmp_path / "no.sock")}
    assert ctl_main(["check-config", str(tmp_path)], nowhere, out, err) == 16, err.getvalue()
    assert out.getvalue().startswith(f"{conf}:2: KillUserProcesses=permisive: ")
    assert out.getvalue().endswith("\n1 file read; 1 warning about ignored lines, the valid lines apply.\n")
    assert check(tmp_path)[1] == out.getvalue()  # the same lines as logoutd --check-config
    out = io.StringIO()
    assert ctl_main(["check-config", str(tmp_path), "--json"], nowhere, out, err) == 16
    assert json.loads(out.getvalue())["check_config"]["ignored"] == 1
    conf.write_text("[Login]\nKillUserProcesses=permissive\n")
    out = io.StringIO()
    assert ctl_main(["check-config", str(tmp_path)], nowhere, out, err) == 0
    assert out.getvalue() == "1 file read; every line parsed.\n" and err.getvalue() == ""


@pytest.mark.parametrize(
    ("setup", "problem"),
    [("dir", "it is a directory"), ("link", "it is a symbolic link"), ("fifo", "it is not a regular file"),
     ("noparent", "its directory"), ("fileparent", "is not a directory"), ("new", None), ("file", None)],
)
def test_audit_path_problem(tmp_path: Path, setup: str, problem: str | None) -> None:
    path = tmp_path / "audit.jsonl"
    if setup == "dir":
        path.mkdir()
    elif setup == "link":
        path.symlink_to(tmp_path / "target")
    elif setup == "fifo":
        os.mkfifo(path)
    elif setup == "noparent":
        path = tmp_path / "a" / "audit.jsonl"
    elif setup == "fileparent":
        (tmp_path / "f").write_text("")
        path = tmp_path / "f" / "audit.jsonl"
    elif setup == "file":
        path.write_text("")
    found = audit_path_problem(str(path))
    assert found is None if problem is None else problem in (found or ""), found
    assert not (tmp_path / "a").exists() and (setup != "new" or not path.exists())
