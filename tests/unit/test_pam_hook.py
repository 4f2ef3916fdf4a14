"""The PAM hook as pam_exec runs it (`python3 -IS`): what it imports and what it sends."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import logoutd.pam.hook as hook

HOOK = Path(hook.__file__)
# Modules that cost milliseconds at every login (or pull in the package): never at start-up.
HEAVY = {"socket", "json", "enum", "selectors", "re", "typing", "logging", "subprocess"}


def _answer_once(path: Path, answer: bytes) -> tuple[threading.Thread, list[bytes]]:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    received: list[bytes] = []

    def serve() -> None:
        with server, server.accept()[0] as conn:
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            received.append(data)
            conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread, received


def _run_hook(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-IS", "-X", "importtime", str(HOOK)],
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
                          capture_output=True, text=True, timeout=10, check=False)


def _imported(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines()
            if line.startswith("import time:")}


def test_open_session_imports_only_light_stdlib_and_sends_valid_json(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    thread, received = _answer_once(path, b'{"v": 1, "ok": true, "result": {}}\n')
    done = _run_hook({"PAM_TYPE": "open_session", "PAM_USER": "root", "PAM_SERVICE": "su-l",
                      "PAM_TTY": "/dev/pts/3", "PAM_RHOST": 'host "x"\n', "LOGOUTD_SOCKET": str(path)})
    thread.join(5)
    assert done.returncode == 0
    imported = _imported(done.stderr)
    assert "_socket" in imported and "pwd" in imported
    assert not imported & HEAVY and not [m for m in imported if m.startswith("logoutd")]
    [line] = received
    request = json.loads(line)
    assert request["method"] == "create_session" and request["v"] == 1
    assert request["params"] == {"uid": 0, "leader": os.getpid(), "service": "su-l",
                                 "tty": "pts/3", "remote_host": 'host "x"\n'}


def test_close_session_sends_release(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    thread, received = _answer_once(path, b'{"v": 1, "ok": true, "result": {}}\n')
    done = _run_hook({"PAM_TYPE": "close_session", "LOGOUTD_SOCKET": str(path)})
    thread.join(5)
    assert done.returncode == 0 and not _imported(done.stderr) & HEAVY
    assert json.loads(received[0]) == {"v": 1, "method": "release_session",
                                       "params": {"leader": os.getpid()}}
