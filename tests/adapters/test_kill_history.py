"""`kill_history` over the real socket and `logoutctl kill-history` / `login-notice` in-process:
a user sees only its own; the notice shows what it has not shown, once, worded for the
user's policy; the switch is the user's file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from logoutd.cli import notice
from logoutd.config.model import Config
from logoutd.core.killrecords import EndedProcess, KillEntry
from tests.adapters.conftest import Served, ctl
from tests.adapters.test_leftovers_api import needs_root
from tests.readable import for_users


def _entry(session: str, mode: str = "killed", count: int = 2) -> KillEntry:
    return KillEntry(1_000_000.0, session, "sshd", "pts/3", mode, count, (
        EndedProcess(4242, "sleep", "sleep 600", 1_000_000.0 - 303),
        EndedProcess(4250, "python3", "python3 train.py --secret-of-alice", 1_000_000.0 - 7500),
    ))


@pytest.fixture
def kills(served: Served) -> Served:
    served.run(served.core.manager.kills.add, 1000, "alice", _entry("c1"))
    served.run(served.core.manager.kills.add, 0, "root", _entry("c2", count=5))
    return served


def _as(served: Served, as_uid: int, **params: object) -> dict[str, object]:
    import subprocess
    code = ("import json, sys\nfrom logoutd.api.client import Client\n"
            "from logoutd.errors import LogoutdError\n"
            f"try:\n    r = Client({str(served.socket)!r}).call('kill_history', "
            "**json.loads(sys.argv[1]))\n    print(json.dumps({'ok': r}))\n"
            "except LogoutdError as e:\n    print(json.dumps({'error': [e.code, e.message]}))\n")
    src = str(for_users(Path(__file__).resolve().parents[2] / "src"))
    result = subprocess.run(["/usr/bin/python3", "-c", code, json.dumps(params)], user=as_uid,
                            capture_output=True, text=True, check=False, timeout=30,
                            env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"}, cwd="/")
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


def test_root_sees_anyones_history_as_a_table_and_json(kills: Served, nss: None) -> None:
    rc, out, err = ctl(kills, "kill-history", "alice")
    assert rc == 0, err
    assert "python3 train.py --secret-of-alice" in out and "2h05m" in out and "c1" in out
    rc, out, _ = ctl(kills, "--json", "kill-history", "alice")
    data = json.loads(out)["kill_history"]
    assert data["user"] == "alice" and data["keep_allowed"] is True
    assert [p["pid"] for p in data["entries"][0]["processes"]] == [4242, 4250]
    assert ctl(kills, "kill-history", "bob")[1] == "No ended processes.\n"


@needs_root
def test_a_user_sees_only_its_own(kills: Served) -> None:
    mine = _as(kills, 1000)
    assert [e["session"] for e in mine["ok"]["entries"]] == ["c1"]  # type: ignore[index]
    other = _as(kills, 1000, uid=0)
    assert other["error"][0] == "access_denied"  # type: ignore[index]
    assert "may not see the kill history of uid 0" in other["error"][1]  # type: ignore[index]
    assert "secret-of-alice" not in json.dumps(_as(kills, 1001, uid=1000))


def test_the_notice_is_shown_once(kills: Served, tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    rc, out, err = ctl(kills, "kill-history", "--notice", **env)
    assert rc == 0 and err == ""
    assert "logoutd: your session c2 (sshd, pts/3) ended " in out
    assert "; these 5 processes were ended with it:" in out
    assert "  python3         pid 4250    ran 2h05m   python3 train.py" in out
    assert "… and 3 more (logoutctl kill-history lists them)" in out
    assert "logoutctl run --scope -- python3 train.py --secret-of-alice" in out  # the oldest
    assert "logoutctl why-killed" in out
    rc, page, _ = ctl(kills, "why-killed")
    assert rc == 0 and page.startswith("# My program was killed when I logged out")
    assert ctl(kills, "kill-history", "--notice", **env)[1] == ""  # once
    rows = json.loads(ctl(kills, "--json", "kill-history")[1])["kill_history"]["entries"]
    assert rows[0]["shown"] is True  # the history keeps it, marked


def test_the_notice_words_a_denied_policy_and_permissive(served: Served, tmp_path: Path) -> None:
    served.core.manager.ctx.config = Config(keep_allow_users=("nobody-else",))
    served.run(served.core.manager.kills.add, 0, "root", _entry("c7", mode="permissive"))
    out = ctl(served, "kill-history", "--notice", HOME=str(tmp_path))[1]
    assert "these 2 processes kept running, and will be ended at logout once the " \
        "administrator turns killing on (KillUserProcesses=permissive):" in out
    assert "You may not keep programs past logout (user root is not in " \
        "KeepAllowUsers=nobody-else" in out
    assert "your administrator decides" in out and "logoutctl run --scope" not in out


def test_the_switch_is_the_users_file_and_silences_the_notice(kills: Served,
                                                              tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    assert ctl(kills, "login-notice", "off", **env)[0] == 0
    assert (tmp_path / ".config/logoutd/no-login-notice").exists()
    assert ctl(kills, "login-notice", **env)[1].startswith("Login notice off (")
    assert ctl(kills, "kill-history", "--notice", **env)[1] == ""
    assert ctl(kills, "login-notice", "on", **env)[0] == 0
    assert "these 5 processes were ended" in ctl(kills, "kill-history", "--notice", **env)[1]
    rc, _, err = ctl(kills, "login-notice", "maybe", **env)
    assert rc != 0 and "Invalid argument 'maybe' for login-notice: on or off." in err


def test_the_notice_is_silent_without_a_daemon(tmp_path: Path) -> None:
    import io

    from logoutd.cli.ctl import main
    out, err = io.StringIO(), io.StringIO()
    rc = main(["kill-history", "--notice"], {"LOGOUTD_SOCKET": str(tmp_path / "none.sock"),
                                             "HOME": str(tmp_path)}, out, err)
    assert (rc, out.getvalue(), err.getvalue()) == (0, "", "")


def test_render_escapes_and_names_the_users_own_stop() -> None:
    answer = {"entries": [{"ended_at": 100.0, "session": "", "service": "user@1000.service",
                           "tty": "", "mode": "killed", "count": 1, "processes": [
                               {"pid": 7, "comm": "tmux: server", "cmdline": "tmux\x1b]0;x\x07",
                                "start_time": 40.0}], "shown": False}],
              "keep_allowed": True, "keep_rule": ""}
    text = notice.render(answer, now=160.0)
    assert "\x1b" not in text and "tmux\\x1b]0;x\\a" in text
    assert "logoutd: after your last session, user@1000.service stopped " in text
    assert "logoutctl enable-linger" in text
