"""logoutctl's edges (issue 13 item 6): STATE in list-sessions, a stale socket, a mistyped verb,
a 0-column pty, a uid not logged in."""

from __future__ import annotations

import fcntl
import io
import os
import socket
import struct
import termios
from pathlib import Path

from logoutd.api.client import Client
from logoutd.cli.ctl import main
from logoutd.cli.output import terminal_width
from tests.adapters.conftest import Served, ctl, open_session


def test_list_sessions_has_a_state_column_so_closing_is_not_a_login(served: Served) -> None:
    open_session(served)
    closing = open_session(served, uid=1001)
    with Client(served.socket) as c:
        assert c.call("release_session", id=closing["id"], leader=None)["session"]["state"] == \
            "closing"
    rc, out, err = ctl(served)
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["SESSION", "UID", "USER", "SEAT", "TTY", "STATE"]
    assert [line.split() for line in lines[1:3]] == [["c1", "1000", "alice", "active"],
                                                     ["c2", "1001", "bob", "closing"]]
    assert lines[1].index("active") == lines[0].index("STATE")
    # --json is unchanged: the state was always there.
    document = ctl(served, "--json", "list-sessions")[1]
    assert '"state": "closing"' in document


def test_a_stale_socket_says_how_to_start_the_daemon(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    out, err = io.StringIO(), io.StringIO()
    assert main(["status"], {"LOGOUTD_SOCKET": str(path)}, out, err) == 10
    assert err.getvalue() == (
        f"logoutd is not running ({path} is left from a daemon that stopped). Start it as root "
        "through the init system (`systemctl start logoutd`, `rc-service logoutd start`) or by "
        "hand (`logoutd`); see docs/install.md.\n")
    assert out.getvalue() == ""


def test_a_mistyped_verb_gets_a_suggestion(served: Served) -> None:
    assert ctl(served, "user-stauts", "alice") == (2, "", (
        "Unknown command verb 'user-stauts' (did you mean 'user-status'?); 'logoutctl --help' "
        "lists them.\n"))
    assert ctl(served, "xyzzy")[2] == "Unknown command verb 'xyzzy'; 'logoutctl --help' lists them.\n"


def test_a_zero_column_pty_is_an_unknown_width() -> None:
    controller, terminal = os.openpty()
    with os.fdopen(terminal, "w") as out:
        try:
            fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
            assert os.get_terminal_size(terminal).columns == 0
            assert terminal_width(out, {}) == 80  # not 0: trees were cut to 20 characters
            fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 132, 0, 0))
            assert terminal_width(out, {}) == 132
            assert terminal_width(out, {"COLUMNS": "0"}) == 132
            assert terminal_width(out, {"COLUMNS": "100"}) == 100
        finally:
            os.close(controller)


def test_user_status_of_a_uid_not_logged_in_says_so(served: Served) -> None:
    open_session(served)
    for word in ("1001", "4242"):  # known to NSS or not: the daemon knows who is logged in
        assert ctl(served, "user-status", word) == (
            6, "", f"User ID {word} is not logged in or lingering.\n")
    assert ctl(served, "user-status", "1000")[1].startswith("alice (1000)\n")
