"""The shell integration as installed (`logoutd install-pam-hook --profile-script`), in real
interactive ssh logins (a pty, `ssh -tt`) of bash, zsh and dash login shells: with logoutctl
at a wrong path, with the daemon stopped or stuck, commands run as without it (same exit
status, at most one more line on stderr); `kill $!` ends a kept nohup job; a second tmux
server (-L, -S) and `screen -S` are kept; XDG_RUNTIME_DIR is set."""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from logoutd.shell import install_profile
from tests.integration.harness.checks import assert_alive_for, wait_gone
from tests.integration.harness.cleanup import Phase
from tests.integration.harness.procs import Proc, kill_tree
from tests.readable import for_users

REPO = Path(__file__).resolve().parents[2]
SHELLS = {"bash": "/bin/bash", "zsh": "/usr/bin/zsh", "dash": "/usr/bin/dash"}
KEPT = re.compile(r"/user@\d+\.service/app\.slice/run-u\d+\.scope$")
NOHUP_TOO = "[Login]\nUserStopDelaySec=60s\n[Policy]\nKeepNohup=yes\n"  # nohup is opt-in


class Terminal:
    """An interactive ssh login on a pty: type lines, wait for what the shell prints."""

    def __init__(self, argv: list[str]) -> None:
        master, slave = os.openpty()
        self.fd = master
        self.popen = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                      start_new_session=True, close_fds=True)
        os.close(slave)
        self.proc = Proc.of(self.popen.pid, "ssh -tt")
        self.seen = ""
        self.count = 0
        self.mark = 0  # where the output of the last command ended

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            try:
                self.seen += os.read(self.fd, 65536).decode(errors="replace")
            except OSError:  # EIO: the client closed its side
                time.sleep(timeout)

    def expect(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.seen)
            if match:
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} within {timeout:g} s; terminal:\n{self.seen}")
            self._read(0.1)

    def run(self, line: str, timeout: float = 30.0) -> str:
        """Type a command line; the output it produced (up to a marker the echo cannot fake)."""
        self.count += 1
        deadline = time.monotonic() + timeout
        while "$ " not in self.seen[self.mark:]:  # type once the shell prompts
            if time.monotonic() > deadline:
                raise AssertionError(f"no prompt within {timeout:g} s; terminal:\n{self.seen}")
            self._read(0.1)
        start = len(self.seen)
        os.write(self.fd, f'{line}; echo "DO""NE{self.count} $?"\n'.encode())
        match = self.expect(rf"DONE{self.count} (\d+)", timeout)
        self.mark = match.end()
        return self.seen[start:match.start()]

    def logout(self, timeout: float = 20.0) -> int:
        os.write(self.fd, b"exit\n")
        deadline = time.monotonic() + timeout
        while self.popen.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        return self.popen.wait(timeout=1)

    def kill(self) -> None:
        if self.popen.poll() is None:
            kill_tree(self.proc)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _logoutctl(env, daemon) -> Path:
    """A logoutctl for the test's daemon at a fixed path that is on nobody's PATH."""
    path = env.tmp / "bin" / "logoutctl"
    path.parent.mkdir(mode=0o755, exist_ok=True)
    path.write_text(f"#!/bin/sh\nLOGOUTD_SOCKET={env.socket} PYTHONPATH={for_users(REPO / 'src')} "
                    'exec /usr/bin/python3 -m logoutd.cli.ctl "$@"\n')
    path.chmod(0o755)
    return path


def _setup(env, user, daemon, shell: str, logoutctl: Path) -> None:
    """The user's login shell is `shell`; its login profile reads the installed script."""
    if shutil.which(SHELLS[shell]) is None:
        pytest.skip(f"{shell} is not installed (make deps installs it)")
    profile = env.tmp / f"profile-{user.name}.sh"
    install_profile(profile, logoutctl, daemon.user_runtime_root, daemon.runtime_dir)
    subprocess.run(["usermod", "-s", SHELLS[shell], user.name], check=True, capture_output=True)
    # What /etc/profile.d would do (bash and dash read ~/.profile's kin, zsh ~/.zprofile);
    # PATH without the test's logoutctl, and a plain prompt.
    text = f"PATH=/usr/bin:/bin; export PATH; PS1='$ '; . {profile}\n"
    zshrc = "PROMPT='$ '; setopt NO_BANG_HIST NO_PROMPT_SP; unset zle_bracketed_paste\n"
    for name, body in ((".bash_profile", text), (".profile", text), (".zprofile", text),
                       (".zshrc", zshrc)):
        path = user.home / name
        path.write_text(body)
        os.chown(path, user.uid, user.gid)


def _open(env, sshd, user, daemon) -> Terminal:
    argv = sshd.argv(user, "")[:-1]
    term = Terminal([argv[0], "-tt", *argv[1:]])
    env.cleanup.add(Phase.PROCESSES, "kill ssh -tt", term.kill)
    daemon.wait_session(user.name, state="active", timeout=20)
    term.run("true")  # the shell is up and has read its profile
    return term


# Each probe: a command line run through the functions and as `command …` (without them), its
# stderr to a file; the results are "NAME STATUS STDERR-LINES" lines in ~/results.
PROBES = {
    "nohup": "nohup sh -c 'exit 7' >/dev/null",
    "tmux_new": "tmux -L s$$NAME -f /dev/null new-session -d 'sleep 300'",
    "tmux_fail": "tmux -L none$$NAME kill-server",
    "screen_new": "screen -dmS s$$NAME sleep 300",
    "screen_ls": "screen -ls none$$NAME >/dev/null",
}
PROBE_FN = ('probe() { eval "$2" 2>"$HOME/err_$1"; echo "$1 $? $(wc -l <"$HOME/err_$1")"'
            ' >>"$HOME/results"; }')


def _probe(term: Terminal, user) -> dict[str, tuple[int, int, int, int, str]]:
    """name -> (status with, status without, stderr lines with, without, stderr with)."""
    term.run(f': >"$HOME/results"; {PROBE_FN}')
    for name, line in PROBES.items():
        term.run(f"probe {name} {_quote(line.replace('NAME', 'w'))}", timeout=60)
        bare = "command " + line.replace("NAME", "b")
        term.run(f"probe base_{name} {_quote(bare)}", timeout=60)
    term.run('( tmux -V >/dev/null; echo "AFTER $?" >>"$HOME/results" )')
    results = {}
    lines = (user.home / "results").read_text().splitlines()
    table = {f[0]: (int(f[1]), int(f[2])) for f in (line.split() for line in lines) if len(f) == 3}
    for name in PROBES:
        err = (user.home / f"err_{name}").read_text()
        results[name] = (*table[name][:1], *table[f"base_{name}"][:1], table[name][1],
                         table[f"base_{name}"][1], err)
    assert "AFTER 0" in lines, f"a foreground subshell went on after tmux: {lines}"
    return results


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _as_usual(results, warned: set[str]) -> None:
    """Same status as without the integration; the probes in `warned` one warning more."""
    for name, (status, base_status, lines, base_lines, err) in results.items():
        assert status == base_status, (name, results[name])
        extra = lines - base_lines
        assert extra == (1 if name in warned else 0), (name, results[name])
        if extra:
            assert err.startswith(f"logoutd: {name.split('_')[0]} will be terminated at logout: "), \
                (name, err)


@pytest.mark.parametrize("shell", list(SHELLS))
def test_logoutctl_at_a_wrong_path_changes_nothing_but_one_line(env, user, pam, start_daemon,
                                                                shell):
    daemon = start_daemon(NOHUP_TOO)
    _setup(env, user, daemon, shell, env.tmp / "nowhere" / "logoutctl")
    term = _open(env, env.sshd(pam), user, daemon)
    results = _probe(term, user)
    _as_usual(results, warned={"nohup", "tmux_new", "tmux_fail", "screen_new"})
    assert "cannot run " + str(env.tmp / "nowhere" / "logoutctl") in results["nohup"][4]
    assert term.logout() == 0, term.seen


@pytest.mark.parametrize("shell", list(SHELLS))
@pytest.mark.parametrize("how", ["stopped", "stuck"])
def test_daemon_stopped_or_stuck_changes_nothing_but_one_line(env, user, pam, start_daemon,
                                                              shell, how):
    daemon = start_daemon(NOHUP_TOO)
    _setup(env, user, daemon, shell, _logoutctl(env, daemon))
    term = _open(env, env.sshd(pam), user, daemon)
    assert daemon.proc is not None
    if how == "stopped":
        daemon.stop()
    else:  # it accepts connections (the backlog) and never answers
        os.kill(daemon.proc.pid, signal.SIGSTOP)
        env.cleanup.add(Phase.PROCESSES, "SIGCONT logoutd",
                        lambda: os.kill(daemon.proc.pid, signal.SIGCONT))  # type: ignore[union-attr]
    started = time.monotonic()
    results = _probe(term, user)
    took = time.monotonic() - started
    _as_usual(results, warned={"nohup", "tmux_new", "tmux_fail", "screen_new"})
    if how == "stuck":
        os.kill(daemon.proc.pid, signal.SIGCONT)
        assert "did not answer within 2 s" in results["nohup"][4], results["nohup"]
        # four kept commands, each waiting once for the 2 s deadline, and the rest
        assert took < 4 * 2 + 30, took
    else:
        assert "logoutd is not running" in results["nohup"][4], results["nohup"]
    term.logout()


@pytest.mark.parametrize("shell", list(SHELLS))
def test_kill_bang_ends_a_kept_nohup_job(env, user, pam, start_daemon, shell):
    daemon = start_daemon(NOHUP_TOO)
    _setup(env, user, daemon, shell, _logoutctl(env, daemon))
    term = _open(env, env.sshd(pam), user, daemon)
    out = term.run('nohup sleep 1234 >/dev/null 2>&1 </dev/null & echo "BANG $!"')
    pid = int(re.search(r"BANG (\d+)", out).group(1))  # type: ignore[union-attr]
    job = Proc.of(pid, "nohup job")
    env.track([job])
    daemon.wait_for(lambda: Path(f"/proc/{pid}/comm").read_text().strip() == "sleep", 10,
                    "$! to be the sleep itself")
    assert KEPT.search(job.cgroup() or ""), job.describe()
    term.run("kill $!")
    wait_gone(env, [job], 5, "the nohup job after kill $!")
    assert term.logout() == 0, term.seen


@pytest.mark.parametrize("shell", list(SHELLS))
def test_second_tmux_servers_and_screen_sessions_are_kept(env, user, pam, start_daemon, shell):
    daemon = start_daemon("[Login]\nUserStopDelaySec=60s\n")
    _setup(env, user, daemon, shell, _logoutctl(env, daemon))
    sshd = env.sshd(pam)
    term = _open(env, sshd, user, daemon)
    sock = user.home / "tmux.sock"
    pids: dict[str, Proc] = {}
    for label, cmd, ask in (
        ("default", "tmux new-session -d 'sleep 1001'", "command tmux display -p '#{pid}'"),
        ("other", "tmux -L other new-session -d 'sleep 1002'",
         "command tmux -L other display -p '#{pid}'"),
        ("path", f"tmux -S {sock} new-session -d 'sleep 1003'",
         f"command tmux -S {sock} display -p '#{{pid}}'"),
        ("screen", "screen -dmS work sleep 1004",
         "command screen -ls work | sed -n 's/^[[:space:]]*\\([0-9]*\\)\\.work.*/\\1/p'"),
        ("screen2", "screen -S work2 -d -m sleep 1005",
         "command screen -ls work2 | sed -n 's/^[[:space:]]*\\([0-9]*\\)\\.work2.*/\\1/p'"),
    ):
        term.run(cmd)
        out = term.run(f'echo "PID $({ask})"')
        pids[label] = Proc.of(int(re.search(r"PID (\d+)", out).group(1)), label)  # type: ignore[union-attr]
    env.track(pids.values())
    for proc in pids.values():
        assert KEPT.search(proc.cgroup() or ""), proc.describe()
    assert len({p.cgroup() for p in pids.values()}) == len(pids), "one scope each"
    # an existing server is used as it is: no new scope, no new server
    term.run("tmux -L other new-session -d 'sleep 1006'")
    assert term.logout() == 0, term.seen
    daemon.wait_for(lambda: not daemon.sessions(user.name), 10, "the session to end")
    assert_alive_for(env, pids.values(), 1.0)


@pytest.mark.parametrize("shell", list(SHELLS))
def test_xdg_runtime_dir_is_set_in_a_hook_session(env, user, pam, start_daemon, shell):
    daemon = start_daemon()
    _setup(env, user, daemon, shell, _logoutctl(env, daemon))
    term = _open(env, env.sshd(pam), user, daemon)
    out = term.run('echo "XDG=${XDG_RUNTIME_DIR-unset}"')
    assert f"XDG={daemon.user_runtime_root / str(user.uid)}" in out, out
    assert term.logout() == 0, term.seen


@pytest.mark.parametrize("shell", list(SHELLS))
def test_nohup_is_kept_only_where_the_policy_says_so(env, user, pam, start_daemon, shell):
    daemon = start_daemon("[Login]\nUserStopDelaySec=60s\n")  # KeepNohup= unset: no
    _setup(env, user, daemon, shell, _logoutctl(env, daemon))
    term = _open(env, env.sshd(pam), user, daemon)
    scope = daemon.wait_session(user.name)["scope"]
    if shell == "zsh":
        term.run("setopt NO_CHECK_JOBS")  # else its `exit` refuses while jobs run
    jobs = []
    for n in (1, 2):
        out = term.run(f'nohup sleep 123{n} >/dev/null 2>&1 </dev/null & echo "BANG $!"')
        assert "logoutd" not in out, out  # untouched: not even a warning
        pid = int(re.search(r"BANG (\d+)", out).group(1))  # type: ignore[union-attr]
        jobs.append(Proc.of(pid, f"nohup job {n}"))
        env.track(jobs[-1:])
        comm = Path(f"/proc/{pid}/comm")
        daemon.wait_for(lambda: comm.read_text().strip() == "sleep", 10,  # noqa: B023
                        "$! to be the sleep itself")
        if n == 1:
            assert (jobs[0].cgroup() or "").endswith(scope), jobs[0].describe()
            # the administrator opts in; the running shell sees it at its next nohup
            daemon.write_dropin("60-nohup.conf", "[Policy]\nKeepNohup=yes\n")
            daemon.reload()
            daemon.wait_for(lambda: "nohup" in (daemon.runtime_dir / "shell-keep").read_text(),
                            10, "the reload to rewrite shell-keep")
    assert KEPT.search(jobs[1].cgroup() or ""), jobs[1].describe()
    assert term.logout() == 0, term.seen
    wait_gone(env, jobs[:1], 10, "the nohup job that was not kept")
    assert_alive_for(env, jobs[1:], 1.0)
