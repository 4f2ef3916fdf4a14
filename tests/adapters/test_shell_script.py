"""The shell integration script run by bash, dash and zsh against stand-in tmux, screen and
logoutctl (which start keeps, which pass through), its XDG_RUNTIME_DIR rule, and its installer.
Real logins: tests/integration/test_shell_login.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from logoutd.config.model import Config
from logoutd.pam.install import main as install_main
from logoutd.shell import SCRIPT, install_profile, render, shell_keep

SHELLS = [s for s in ("bash", "dash", "zsh") if shutil.which(s)]

FAKE_TMUX = r"""#!/bin/sh
last=; for a; do last=$a; done
if [ "$last" = has-session ]; then
    echo "has-session $*" >>"$T/log"
    name=default
    while [ $# -gt 0 ]; do
        case $1 in -L) name=$2; shift ;; -L*) name=${1#-L} ;; -S) name=$2; shift ;; esac
        shift
    done
    grep -qx "$name" "$T/servers"; exit
fi
echo "PLAIN tmux $*" >>"$T/log"
"""
FAKE_SCREEN = r"""#!/bin/sh
echo "PLAIN screen $*" >>"$T/log"
if [ "$1" = -ls ]; then grep "${2:-.}" "$T/screens"; fi
"""
FAKE_CTL = r"""#!/bin/sh
echo "KEPT $*" >>"$T/log"
"""


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("tmux", FAKE_TMUX), ("screen", FAKE_SCREEN), ("logoutctl", FAKE_CTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "servers").write_text("")
    (tmp_path / "screens").write_text("")
    return bin_dir


def _run(shell: str, tmp_path: Path, line: str, env: dict[str, str] | None = None) -> list[str]:
    """`line` in `shell` with the script sourced, as if inside a session; what it ran."""
    (tmp_path / "log").write_text("")
    script = (f". {SCRIPT}; _logoutd_in_session() {{ return 0; }}; "
              f"_logoutd_ctl={tmp_path}/bin/logoutctl; _logoutd_runtime_dir={tmp_path}; {line}")
    subprocess.run([shell, "-c", script], timeout=20, env={
        "PATH": f"{tmp_path}/bin:/usr/bin:/bin", "T": str(tmp_path), "HOME": str(tmp_path),
        **(env or {})})
    return (tmp_path / "log").read_text().splitlines()


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("servers", "line", "kept", "asked"), [
    ("", "tmux new -d", True, "has-session"),
    ("default", "tmux new -d", False, "has-session"),
    ("default", "tmux -L other new -d", True, "-L other has-session"),
    ("other", "tmux -Lother new -d", False, "-Lother has-session"),
    ("default", "tmux -S /tmp/x.sock new -d", True, "-S /tmp/x.sock has-session"),
    ("default", "tmux -2u -f /dev/null -L other new", True, "-2u -f /dev/null -L other has-session"),
    ("default", "tmux -- new", False, "-- has-session"),
    ("", "tmux -V", False, None),
    ("", "tmux -c 'echo hi'", False, None),
])
def test_tmux_keeps_a_new_server_on_the_socket_it_names(
        shell: str, tmp_path: Path, bin_dir: Path, servers: str, line: str, kept: bool,
        asked: str | None) -> None:
    (tmp_path / "servers").write_text(servers + "\n")
    log = _run(shell, tmp_path, line)
    args = line.split(" ", 1)[1] if " " in line else ""
    assert log[-1] == (f"KEPT run --scope --or-warn -- tmux {args}" if kept
                       else f"PLAIN tmux {args}").replace("'", ""), log
    assert [entry for entry in log if entry.startswith("has-session")] == \
        ([f"has-session {asked}"] if asked else []), log


DETACHED = "\t123.work\t(Detached)\n"
ATTACHED = "\t124.work\t(Attached)\n"


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("screens", "line", "kept", "env"), [
    ("", "screen", True, {}),
    ("", "screen -S work", True, {}),
    (DETACHED, "screen -dmS work sleep 9", True, {}),
    ("", "screen -S work -d -m", True, {}),
    ("", "screen -r", False, {}),
    ("", "screen -x work", False, {}),
    ("", "screen -ls", False, {}),
    ("", "screen -list", False, {}),
    ("", "screen -S work -X quit", False, {}),
    ("", "screen -d work", False, {}),
    ("", "screen -R work", True, {}),
    (DETACHED, "screen -R work", False, {}),
    (ATTACHED, "screen -R work", True, {}),
    (ATTACHED, "screen -dRR work", False, {}),
    (DETACHED, "screen -S work -R", False, {}),
    ("", "screen vim", False, {"STY": "1.pts-0.host"}),
    ("", "screen -m vim", True, {"STY": "1.pts-0.host"}),
])
def test_screen_keeps_a_new_session(shell: str, tmp_path: Path, bin_dir: Path, screens: str,
                                    line: str, kept: bool, env: dict[str, str]) -> None:
    (tmp_path / "screens").write_text(screens)
    log = _run(shell, tmp_path, line, env)
    args = line.split(" ", 1)[1] if " " in line else ""
    expected = f"KEPT run --scope --or-warn -- screen {args}" if kept else f"PLAIN screen {args}"
    assert log[-1] == expected.rstrip(), log
    assert all(entry.startswith("PLAIN screen -ls") for entry in log[:-1]), log


@pytest.mark.parametrize("shell", SHELLS)
def test_missing_logoutctl_or_its_interpreter_costs_one_line(
        shell: str, tmp_path: Path, bin_dir: Path) -> None:
    ctl = tmp_path / "venv-logoutctl"
    ctl.write_text(f"#!{tmp_path}/gone/python3 -I\n")  # a venv whose python went away
    ctl.chmod(0o755)
    (tmp_path / "shell-keep").write_text("tmux screen nohup\n")
    for path in (ctl, tmp_path / "nowhere"):
        script = (f". {SCRIPT}; _logoutd_in_session() {{ return 0; }}; _logoutd_ctl={path}; "
                  f"_logoutd_runtime_dir={tmp_path}; nohup sh -c 'exit 7' >/dev/null; echo $?")
        run = subprocess.run([shell, "-c", script], capture_output=True, text=True, timeout=20,
                             env={"PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL)
        assert run.stdout == "7\n"
        assert run.stderr == f"logoutd: nohup will be terminated at logout: cannot run {path}.\n"


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("policy", "kept"), [
    (None, {"tmux", "screen"}),  # no file (the daemon never ran): the defaults
    ("tmux screen\n", {"tmux", "screen"}),
    ("tmux screen nohup\n", {"tmux", "screen", "nohup"}),
    ("nohup", {"nohup"}),  # no newline: read fails, the line counts all the same
    ("\n", set()),
    ("nohups screen\n", {"screen"}),  # words, not substrings
])
def test_which_commands_are_kept_is_the_daemons_shell_keep_file(
        shell: str, tmp_path: Path, bin_dir: Path, policy: str | None, kept: set[str]) -> None:
    if policy is not None:
        (tmp_path / "shell-keep").write_text(policy)
    log = _run(shell, tmp_path, "tmux new -d; screen -S work; nohup true")
    assert [entry for entry in log if not entry.startswith("has-session")] == [
        f"KEPT run --scope --or-warn -- {line}" if line.split()[0] in kept else f"PLAIN {line}"
        for line in ("tmux new -d", "screen -S work", "nohup true")
        if line.split()[0] in kept or line.split()[0] != "nohup"]  # plain nohup: no stand-in


@pytest.mark.parametrize("shell", SHELLS)
def test_a_shell_keep_that_is_no_regular_file_means_the_defaults(
        shell: str, tmp_path: Path, bin_dir: Path) -> None:
    (tmp_path / "shell-keep").mkdir()  # read would fail; a FIFO would block: neither is read
    os.mkfifo(tmp_path / "fifo")
    log = _run(shell, tmp_path, "tmux new -d; nohup true")
    assert log[-1] == "KEPT run --scope --or-warn -- tmux new -d", log
    (tmp_path / "shell-keep").rmdir()
    (tmp_path / "shell-keep").symlink_to(tmp_path / "fifo")
    log = _run(shell, tmp_path, "tmux new -d; nohup true")
    assert log[-1] == "KEPT run --scope --or-warn -- tmux new -d", log


def test_the_daemon_writes_what_the_keys_say() -> None:
    assert shell_keep(Config()) == "tmux screen\n"
    assert shell_keep(Config(keep_nohup=True, keep_tmux=False)) == "screen nohup\n"
    assert shell_keep(Config(keep_screen=False, keep_tmux=False)) == "\n"


@pytest.mark.parametrize("shell", SHELLS)
def test_xdg_runtime_dir_only_for_the_users_own_0700_directory(shell: str, tmp_path: Path) -> None:
    root = tmp_path / "user"
    root.mkdir()
    mine = root / str(os.getuid())

    def seen(env: dict[str, str] | None = None) -> str:
        text = render(Path("/nonexistent/logoutctl"), root)
        (tmp_path / "profile.sh").write_text(text)
        run = subprocess.run([shell, "-c", f". {tmp_path}/profile.sh; echo \"${{XDG_RUNTIME_DIR-unset}}\""],
                             capture_output=True, text=True, check=True, timeout=20,
                             env={"PATH": "/usr/bin:/bin", **(env or {})})
        assert run.stderr == ""
        return run.stdout.strip()

    assert seen() == "unset"  # no directory
    mine.mkdir(mode=0o700)
    mine.chmod(0o700)
    assert seen() == str(mine)
    assert seen({"XDG_RUNTIME_DIR": "/elsewhere"}) == "/elsewhere"
    mine.chmod(0o755)
    assert seen() == "unset"
    mine.rename(root / "real")
    (root / "real").chmod(0o700)
    mine.symlink_to(root / "real")
    assert seen() == "unset"  # never through a symlink
    mine.unlink()
    mine.mkdir(mode=0o700)
    os.chown(mine, 12345, -1) if os.getuid() == 0 else pytest.skip("chown needs root")
    assert seen() == "unset"  # not the user's


def test_install_writes_this_hosts_paths(tmp_path: Path) -> None:
    ctl = tmp_path / "opt dir" / "logoutctl"
    dest = tmp_path / "profile.d" / "logoutd.sh"
    assert install_profile(dest, ctl, Path("/srv/run/user"), Path("/srv/run/logoutd")) == ctl
    text = dest.read_text()
    assert f"\n_logoutd_ctl='{ctl}'\n" in text and "\n_logoutd_runtime_root=/srv/run/user\n" in text
    assert "\n_logoutd_runtime_dir=/srv/run/logoutd\n" in text
    assert dest.stat().st_mode & 0o777 == 0o644
    assert text.replace(f"'{ctl}'", "/usr/local/bin/logoutctl").replace(
        "/srv/run/", "/run/") == SCRIPT.read_text()
    with pytest.raises(ValueError, match="not an absolute path"):
        render(Path("logoutctl"))


def test_install_pam_hook_with_profile_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ctl = tmp_path / "logoutctl"
    hook, profile = tmp_path / "logoutd-pam", tmp_path / "logoutd.sh"
    with pytest.raises(SystemExit):  # there is no logoutctl there
        install_main(["--dest", str(hook), "--profile-script", str(profile), "--logoutctl", str(ctl)])
    assert not profile.exists()
    ctl.write_text("#!/bin/sh\n")
    ctl.chmod(0o755)
    assert install_main(["--dest", str(hook), "--profile-script", str(profile),
                         "--logoutctl", str(ctl), "--runtime-dir", "/srv/run/logoutd"]) == 0
    assert hook.exists() and f"_logoutd_ctl={ctl}\n" in profile.read_text()
    assert "\n_logoutd_runtime_dir=/srv/run/logoutd\n" in profile.read_text()
    assert f"Installed {profile} (shell integration, runs {ctl})." in capsys.readouterr().out


FAKE_GREP = r"""#!/bin/sh
for a; do [ "$a" = /proc/self/cgroup ] && exit 0; done  # "in a session"
exec /bin/grep "$@"
"""


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("flags", "env", "flagged", "asked"), [
    (["-c"], {}, True, False),  # `ssh host cmd`, scp, rsync: not interactive
    (["-i", "-c"], {}, True, True),
    (["-i", "-c"], {}, False, False),  # nothing unshown: no Python start at all
    (["-i", "-c"], {"LOGOUTD_LOGIN_NOTICE": "0"}, True, False),
    (["-i", "-c"], {"LOGOUTD_SHELL_INTEGRATION": "0"}, True, False),
])
def test_the_login_notice_is_asked_for_in_interactive_shells_only(
        shell: str, tmp_path: Path, bin_dir: Path, flags: list[str], env: dict[str, str],
        flagged: bool, asked: bool) -> None:
    (bin_dir / "grep").write_text(FAKE_GREP)
    (bin_dir / "grep").chmod(0o755)
    runtime_dir = tmp_path / "logoutd"
    (runtime_dir / "notice").mkdir(parents=True)
    if flagged:  # the daemon's flag: an entry the notice has not shown yet
        (runtime_dir / "notice" / f"{os.getuid()}.json").write_text("{}\n")
    profile = tmp_path / "profile.sh"
    profile.write_text(render(bin_dir / "logoutctl", tmp_path / "user", runtime_dir))
    (tmp_path / "log").write_text("")
    result = subprocess.run([shell, *flags, f". {profile}; echo AFTER"], timeout=20,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, env={
                                "PATH": f"{bin_dir}:/usr/bin:/bin", "T": str(tmp_path),
                                "HOME": str(tmp_path), **env})
    assert "AFTER" in result.stdout, result
    log = (tmp_path / "log").read_text().splitlines()
    assert log == (["KEPT kill-history --notice"] if asked else []), (log, result)


def test_the_default_logoutctl_is_the_wrapper_every_user_can_run(tmp_path: Path) -> None:
    from logoutd.shell import default_logoutctl

    wrapper = tmp_path / "logoutctl"
    assert default_logoutctl(wrapper) == Path(sys.executable).parent / "logoutctl"  # none yet
    wrapper.write_text("#!/bin/sh\n")
    wrapper.chmod(0o755)
    assert default_logoutctl(wrapper) == wrapper
