"""logoutctl's session views, in-process (`main(argv, env, out, err)`) against a real daemon, on
sessions made by real `su -l` logins: list-sessions, session-status, show-session, `self`.
"""

from __future__ import annotations

import re

from tests.integration.harness.ctl import ctl, in_session, open_login, tagged

# -- list-sessions --------------------------------------------------------------------------


def test_list_sessions_layout_legend_and_json(env, user, user2, pam, daemon):
    empty = ctl(env)
    assert (empty.rc, empty.out) == (0, "No sessions.\n"), empty
    assert ctl(env, "--no-legend").out == ""

    _, _, s1 = open_login(env, pam, user, daemon, "nohup")
    _, _, s2 = open_login(env, pam, user2, daemon, "nohup")
    result = ctl(env, "list-sessions")
    assert result.rc == 0 and result.err == "", result
    first, second = sorted([s1, s2], key=lambda s: s["id"])
    width = max(len("SESSION"), len(first["id"]), len(second["id"]))
    uid_width = max(len(str(user.uid)), len(str(user2.uid)))
    name_width = max(len(user.name), len(user2.name))
    tty_width = max(len("TTY"), len(first["tty"] or ""), len(second["tty"] or ""))
    state_width = max(len("STATE"), len(first["state"]), len(second["state"]))
    assert {first["state"], second["state"]} == {"active"}

    def row(s: dict[str, str]) -> str:
        return (f"{s['id']:>{width}} {s['uid']:>{uid_width}} {s['user']:<{name_width}} "
                f"{'':<4} {s['tty'] or '':<{tty_width}} {s['state']:<{state_width}}").rstrip()

    assert result.lines == [
        f"{'SESSION':>{width}} {'UID':>{uid_width}} {'USER':<{name_width}} SEAT "
        f"{'TTY':<{tty_width}} STATE",
        row(first),
        row(second),
        "",
        "2 sessions listed.",
    ], result.out
    # The default verb; --no-legend drops header and footer; options go anywhere.
    assert ctl(env).out == result.out
    assert ctl(env, "--no-legend").lines == result.lines[1:3]
    assert ctl(env, "list-sessions", "--no-legend").lines == result.lines[1:3]

    document = ctl(env, "--json", "list-sessions").json()
    assert document["schema"] == 1
    assert [s["id"] for s in document["sessions"]] == [first["id"], second["id"]]
    assert document["sessions"][0] == daemon.session(first["id"])


def test_list_sessions_underlines_header_on_a_terminal_only(env, user, pam, daemon):
    open_login(env, pam, user, daemon)
    assert ctl(env, tty=True).lines[0].startswith("\x1b[0;4mSESSION")
    assert "\x1b[" not in ctl(env, tty=True, NO_COLOR="1").out
    assert "\x1b[" not in ctl(env).out


# -- session-status ---------------------------------------------------------------------------


def test_session_status_shows_the_process_tree(env, user, pam, daemon):
    login, procs, session = open_login(env, pam, user, daemon, "nohup", "daemon",
                                       extra='echo "PID shell $$"')
    result = ctl(env, "session-status", session["id"])
    assert result.rc == 0, result
    print(result.out)  # the closing note shows a real one
    lines = result.lines
    leader = session["leader"]
    assert lines[0] == f"{session['id']} - {user.name} ({user.uid})"
    assert re.fullmatch(r"\t   Since: \w{3} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+; .+ ago|"
                        r"\t   Since: .+; now", lines[1]), lines[1]
    assert lines[2] == f"\t  Leader: {leader} (su)"
    assert lines[3] == "\t  Remote: user root"
    assert lines[4] == f"\t Service: su-l; type {session['type']}; class {session['class']}"
    assert lines[5] == "\t   State: active"
    assert lines[6] == f"\t    Unit: session-{session['id']}.scope"
    tree = lines[7:]
    assert all(t.startswith("\t\t  ") for t in tree), tree
    assert tree[-1].startswith("\t\t  └─"), tree
    parsed = [re.fullmatch(r"\t\t  [├└]─( *)(\d+) (.+)", t) for t in tree]
    assert all(parsed), tree
    by_pid = {int(m[2]): m[3] for m in parsed if m}
    width = max(len(m[1] + m[2]) for m in parsed if m)
    assert all(len(m[1] + m[2]) == width for m in parsed if m), tree  # pids right-aligned
    assert by_pid[leader].startswith("su -l "), by_pid
    assert by_pid[procs["nohup"].pid] == "sleep 1000"
    assert by_pid[procs["daemon"].pid] == "sleep 1001"
    assert by_pid[procs["shell"].pid].startswith("-bash -c "), by_pid
    assert set(by_pid) == set(env_pids := _scope_pids(env, session)), (by_pid, env_pids)

    # Colour on a terminal: pids and command lines grey, as systemd-cgls; never with NO_COLOR.
    coloured = ctl(env, "session-status", session["id"], tty=True, COLUMNS="200")
    assert "\x1b[0;38;5;245m" in coloured.out
    assert "\x1b[" not in ctl(env, "session-status", session["id"], tty=True, NO_COLOR="1").out

    document = ctl(env, "session-status", session["id"], "--json").json()
    [shown] = document["sessions"]
    assert {p["pid"] for p in shown["processes"]} == set(by_pid)
    assert {p["cgroup"] for p in shown["processes"]} == {session["scope"]}
    assert login.logout() == 0


def _scope_pids(env, session) -> set[int]:
    return {int(p) for p in (env.scope_dir(session["scope"]) / "cgroup.procs").read_text().split()}


def test_self_auto_and_empty_mean_the_callers_session(env, user, pam, daemon):
    extra = "; ".join([
        in_session(env, "status", "session-status"),
        in_session(env, "self", "show-session", "self", "-P", "Id"),
        in_session(env, "auto", "show-session", "auto", "-p", "Id,Name"),
        in_session(env, "empty", "show-session", "''", "--value", "-p", "User"),
        in_session(env, "user", "user-status"),
    ])
    login, _, session = open_login(env, pam, user, daemon, extra=extra)
    rc, lines = tagged(login, "status")
    assert rc == 0 and lines[0] == f"{session['id']} - {user.name} ({user.uid})", lines
    assert tagged(login, "self") == (0, [session["id"]])
    assert tagged(login, "auto") == (0, [f"Id={session['id']}", f"Name={user.name}"])
    assert tagged(login, "empty") == (0, [str(user.uid)])
    rc, lines = tagged(login, "user")
    assert rc == 0 and lines[0] == f"{user.name} ({user.uid})", lines
    # Outside any session, "self" names nothing.
    outside = ctl(env, "session-status")
    assert outside.rc == 5 and "does not belong to any session" in outside.err, outside
    assert login.logout() == 0


# -- show-session -------------------------------------------------------------------------------


def test_show_session_properties_and_filters(env, user, user2, pam, start_daemon):
    daemon = start_daemon("[Login]\nKillUserProcesses=no\nKillExcludeUsers=root nobody\n")
    _, _, s1 = open_login(env, pam, user, daemon)
    _, _, s2 = open_login(env, pam, user2, daemon)
    shown = ctl(env, "show-session", s1["id"])
    assert shown.rc == 0, shown
    props = dict(line.split("=", 1) for line in shown.lines)
    assert props["Id"] == s1["id"] and props["User"] == str(user.uid)
    assert props["Name"] == user.name and props["Leader"] == str(s1["leader"])
    assert props["Scope"] == f"session-{s1['id']}.scope" and props["State"] == "active"
    assert props["Service"] == "su-l" and props["RemoteUser"] == "root"
    assert props["Remote"] == "no" and props["Active"] == "yes"
    assert "Seat" not in props and "TTY" not in props  # empty values are hidden without -a
    assert "Seat=" in ctl(env, "show-session", s1["id"], "-a").lines

    assert ctl(env, "show-session", s1["id"], "-p", "Name", "-p", "Id").lines == [
        f"Id={s1['id']}", f"Name={user.name}"]
    assert ctl(env, "show-session", s1["id"], "--property=State,Leader", "--value").lines == [
        str(s1["leader"]), "active"]
    assert ctl(env, "show-session", s1["id"], s2["id"], "-P", "Name").lines == [
        user.name, user2.name]
    two = ctl(env, "show-session", s1["id"], s2["id"], "-p", "Id")
    assert two.lines == [f"Id={s1['id']}", "", f"Id={s2['id']}"]
    assert ctl(env, "show-session", s1["id"], "-p", "TTY").lines == ["TTY="]

    document = ctl(env, "show-session", s1["id"], "--json", "-p", "Id,State").json()
    assert document == {"schema": 1, "properties": [{"Id": s1["id"], "State": "active"}]}

    # No ID: the manager, i.e. the configuration under logind's property names.
    manager = dict(line.split("=", 1) for line in ctl(env, "show-session").lines)
    assert manager["KillUserProcesses"] == "no"
    assert manager["KillExcludeUsers"] == "root nobody"
    assert manager["UserStopDelayUSec"] == "0" and manager["SessionsMax"] == "8192"
    assert manager["NCurrentSessions"] == "2" and manager["StopIdleSessionUSec"] == "infinity"
    assert "KillOnlyUsers" not in manager
    assert "KillOnlyUsers=" in ctl(env, "show-session", "--all").lines
    assert ctl(env, "show-user", "-P", "KillUserProcesses").lines == ["no"]
