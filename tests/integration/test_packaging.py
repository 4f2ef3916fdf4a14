"""What an administrator installs beside the daemon (issue 13, items 3 and 5): the logrotate
file, run by the real logrotate; the logoutctl wrapper, run by an ordinary user."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness.daemon import src_dir

REPO = Path(__file__).resolve().parents[2]
LOGROTATE = REPO / "contrib/logrotate/logoutd"


@pytest.mark.skipif(shutil.which("logrotate") is None, reason="logrotate is not installed")
def test_logrotate_file_rotates_the_documented_files(tmp_path: Path) -> None:
    text = LOGROTATE.read_text()
    targets = ["/var/log/logoutd.log", "/var/log/logoutd/audit.jsonl"]
    for target in targets:
        assert target in text
    assert targets[1] in (REPO / "docs/admin-guide.md").read_text()  # the AuditLog= it shows
    # The shipped file parses as it is (debug mode changes nothing).
    state = tmp_path / "state"
    check = subprocess.run(["logrotate", "-d", "-s", str(state), str(LOGROTATE)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert "error" not in check.stderr.lower(), check.stderr
    # The same file with the paths moved under tmp_path, forced: both rotate, truncated in place.
    (tmp_path / "logoutd").mkdir()
    moved = text
    files = []
    for target in targets:
        path = tmp_path / target.removeprefix("/var/log/")
        path.write_text("line one\nline two\n")
        moved = moved.replace(target, str(path))
        files.append(path)
    conf = tmp_path / "logoutd.conf"
    conf.write_text(moved)
    held = [open(f, "a") for f in files]  # noqa: SIM115 (the daemon's open descriptors)
    try:
        run = subprocess.run(["logrotate", "-f", "-s", str(state), str(conf)],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        for f, h in zip(files, held, strict=True):
            assert Path(f"{f}.1").read_text() == "line one\nline two\n"
            assert f.stat().st_size == 0
            h.write("after\n")
            h.flush()
            assert f.read_text() == "after\n"  # the same file: copytruncate, no reopen needed
    finally:
        for h in held:
            h.close()


def test_installed_logoutctl_runs_for_an_ordinary_user(env, user, daemon) -> None:  # type: ignore[no-untyped-def]
    dest = env.tmp / "bin/logoutctl"
    install = subprocess.run([sys.executable, "-m", "logoutd", "install-logoutctl", "--dest",
                              str(dest)], capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, PYTHONPATH=str(src_dir())))
    assert install.returncode == 0, install.stderr
    assert install.stdout.startswith(f"{dest}: logoutctl for every user"), install.stdout
    assert "warning" not in install.stdout, install.stdout
    assert dest.read_text().startswith("#!/usr/bin/python3 -IS\n")
    run = subprocess.run(["runuser", "-u", user.name, "--", str(dest), "--socket",
                          str(daemon.socket), "list-sessions"],
                         capture_output=True, text=True, timeout=60, cwd="/")
    assert run.returncode == 0, run
    assert "0 sessions listed." in run.stdout or "No sessions." in run.stdout, run.stdout
    # Again over the first: replaced in place, still ours.
    again = subprocess.run([sys.executable, "-m", "logoutd", "install-logoutctl", "--dest",
                            str(dest)], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, PYTHONPATH=str(src_dir())))
    assert again.returncode == 0 and dest.stat().st_mode & 0o777 == 0o755


def test_a_missing_cgroup_root_says_it_does_not_exist(env) -> None:  # type: ignore[no-untyped-def]
    daemon = env.daemon(start=False)
    argv = daemon.argv()
    missing = env.tmp / "no-such-cgroup"
    argv[argv.index("--cgroup-root") + 1] = str(missing)
    other_run = env.tmp / "run-missing-cgroup"
    argv[argv.index("--runtime-dir") + 1] = str(other_run)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, PYTHONPATH=str(src_dir())))
    assert result.returncode == 1, result
    assert result.stderr == (f"logoutd: --cgroup-root {missing} does not exist (create it with "
                             "mkdir inside the cgroup2 mount, or give another one).\n")
    assert not other_run.exists()  # nothing made


def test_a_daemon_started_inside_a_session_scope_warns(env) -> None:  # type: ignore[no-untyped-def]
    """As when started from an administrator's tracked login: its own cgroup is a session
    scope under the managed root's user.slice."""
    daemon = env.daemon(start=False)
    scope = env.cgroup_root / "user.slice/user-0.slice/session-c77.scope"
    scope.mkdir(parents=True)
    argv = daemon.argv()
    inner = f'echo $$ > {shlex.quote(str(scope / "cgroup.procs"))} && exec "$@"'
    with open(daemon.log_path, "ab") as log:
        popen = subprocess.Popen(["sh", "-c", inner, "sh", *argv], stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=log,
                                 env=dict(os.environ, PYTHONPATH=str(src_dir())))
    daemon.popen = popen
    try:
        daemon.wait_for(lambda: "inside a session scope c77 it manages" in daemon.log(), 30,
                        "the warning")
        [line] = [x for x in daemon.log().splitlines() if "inside a session scope" in x]
        assert " WARNING logoutd itself runs in " in line and "would be killed" in line, line
    finally:
        daemon.kill()
