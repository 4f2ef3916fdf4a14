"""`make demo`: a throw-away user logs in through real PAM, leaves processes behind, logs out.

Everything it creates (user, PAM service file, cgroup subtree, temp dirs, daemon) is its own
and removed at the end, processes first, even on failure. Run as root on a cgroup2 machine.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from logoutd.api.client import Client
from logoutd.cli.ctl import main as logoutctl
from logoutd.errors import LogoutdError
from logoutd.pam.install import install_hook
from logoutd.system.cgroups import find_cgroup2_mount

TAG = secrets.token_hex(3)
USER = f"lgdemo{TAG}"
SERVICE = f"logoutd-demo-{TAG}"


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on SIGTERM too
    if os.geteuid() != 0:
        print("make demo must run as root (it creates a user and a PAM service).", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="logoutd-demo-"))
    tmp.chmod(0o755)
    cgroup = find_cgroup2_mount() / f"logoutd-demo-{TAG}"
    pam_file = Path("/etc/pam.d") / SERVICE
    daemon: subprocess.Popen[bytes] | None = None
    try:
        cgroup.mkdir()
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", USER], check=True)
        hook = tmp / "logoutd-pam"
        install_hook(hook)
        sock = tmp / "api.sock"
        pam_file.write_text(
            "auth sufficient pam_rootok.so\naccount required pam_permit.so\n"
            "session required pam_unix.so\n"
            f"session optional pam_exec.so quiet seteuid {hook} --socket {sock}\n"
        )
        say(f"logoutd (built-in defaults) managing {cgroup}")
        log = (tmp / "daemon.log").open("wb")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "logoutd", "--root", str(tmp / "root"), "--cgroup-root",
             str(cgroup), "--runtime-dir", str(tmp / "run"), "--state-dir", str(tmp / "state"),
             "--user-runtime-root", str(tmp / "user"), "--socket", str(sock),
             "--log-target", "stderr"],
            stderr=log,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                Client(sock, timeout=1).call("status")
                break
            except LogoutdError:
                if time.monotonic() > deadline or daemon.poll() is not None:
                    raise SystemExit(f"logoutd did not start; see {tmp / 'daemon.log'}") from None
                time.sleep(0.05)

        say(f"su -l {USER}: start 'nohup sleep' and a double-forked setsid daemon ignoring SIGHUP")
        pids = tmp / "pids"
        script = (
            "nohup sleep 1000 >/dev/null 2>&1 & echo $! >> PIDS; "
            "( setsid sh -c 'trap \"\" HUP; exec sleep 1001' >/dev/null 2>&1 & echo $! >> PIDS ); "
            "sleep 2"
        ).replace("PIDS", str(pids))
        pids.touch(mode=0o666)
        pids.chmod(0o666)  # the demo user writes the pids it leaves behind
        pam_su = tmp / "su-l"
        pam_su.write_text(pam_file.read_text())
        login = subprocess.Popen([
            "unshare", "--mount", "--propagation", "private", "sh", "-c",
            f"mount --bind {pam_su} /etc/pam.d/su-l && exec su -l {USER} -c \"$0\"", script,
        ])
        deadline = time.monotonic() + 10
        while len(pids.read_text().split()) < 2:
            if login.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the login did not start its processes")
            time.sleep(0.05)
        left = [int(p) for p in pids.read_text().split()]
        time.sleep(0.3)
        env = {"LOGOUTD_SOCKET": str(sock)}
        logoutctl(["list-sessions"], env)
        session = Client(sock).call("list_sessions")["sessions"][0]["id"]
        print()
        logoutctl(["session-status", session], env)

        say("logout (the shell exits, su closes the PAM session and exits)")
        login.wait()
        logout = time.monotonic()
        while any(alive(p) for p in left) and time.monotonic() - logout < 10:
            time.sleep(0.005)
        elapsed = (time.monotonic() - logout) * 1000
        for pid in left:
            print(f"  pid {pid}: {'STILL RUNNING' if alive(pid) else 'gone'}")
        print(f"  all gone {elapsed:.0f} ms after su exited" if not any(map(alive, left))
              else "  some survived!")
        time.sleep(0.2)
        logoutctl(["list-sessions"], env)

        say("what the daemon logged")
        log.flush()
        print((tmp / "daemon.log").read_text().rstrip())
        return 0 if not any(map(alive, left)) else 1
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(10)
        if cgroup.exists():
            (cgroup / "cgroup.kill").write_text("1")
            for _ in range(200):
                if "populated 0" in (cgroup / "cgroup.events").read_text():
                    break
                time.sleep(0.01)
            for directory in sorted(cgroup.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if directory.is_dir():
                    directory.rmdir()
            cgroup.rmdir()
        subprocess.run(["userdel", "-r", USER], capture_output=True, check=False)
        pam_file.unlink(missing_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
