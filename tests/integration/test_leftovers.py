"""Permissive mode and the audit log on real sessions: nothing killed, every leftover recorded
with the right fields and the reason it would have outlived a classic logout."""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import astuple
from pathlib import Path

from logoutd.cli.ctl import main as logoutctl
from tests.integration.harness.checks import assert_alive_for, wait_gone, wait_session_removed
from tests.integration.harness.ctl import ctl_as
from tests.integration.harness.login import script
from tests.integration.harness.procs import signal_proc


def _audit(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_permissive_keeps_and_records_leftovers(env, user, pam, start_daemon):
    audit = env.tmp / "audit.jsonl"
    daemon = start_daemon(f"[Login]\nKillUserProcesses=permissive\n[Logoutd]\nAuditLog={audit}\n")
    login = env.login("su", pam, user, script("nohup", "daemon"))
    procs = login.wait_ready()
    env.track(procs.values())
    session = daemon.wait_session(user.name)
    assert login.logout() == 0, login.report()

    assert_alive_for(env, procs.values(), 1.0)  # permissive: nothing is killed
    records = daemon.wait_for(
        lambda: len(daemon.call("leftovers", session=session["id"])["leftovers"]) >= 2
        and daemon.call("leftovers", session=session["id"])["leftovers"], 5, "leftover records")
    by_pid = {r["pid"]: r for r in records}
    nohup, setsid = by_pid[procs["nohup"].pid], by_pid[procs["daemon"].pid]
    for record, argv in ((nohup, "sleep 1000"), (setsid, "sleep 1001")):
        assert record["action"] == "kept" and record["user"] == user.name, record
        assert record["uid"] == user.uid and record["proc_uid"] == user.uid, record
        assert record["comm"] == "sleep" and record["exe"].endswith("/sleep"), record
        assert record["cmdline"] == argv, record
        stat = Path("/proc/stat").read_text().splitlines()
        boot = float(next(x.split()[1] for x in stat if x.startswith("btime")))
        ticks = int(Path(f"/proc/{record['pid']}/stat").read_text().rsplit(")", 1)[1].split()[19])
        started = boot + ticks / os.sysconf("SC_CLK_TCK")
        assert abs(record["start_time"] - started) < 0.05, record
        assert record["tty"] == "" and "no controlling tty" in record["why"], record
    assert "ignores SIGHUP" in nohup["why"], nohup
    assert "daemonized: leads its own session (setsid)" in setsid["why"], setsid
    assert "ignores SIGHUP" in setsid["why"], setsid  # trap "" HUP

    out, err = io.StringIO(), io.StringIO()
    assert logoutctl(["leftovers", "--session", session["id"]],
                     {"LOGOUTD_SOCKET": str(env.socket)}, out, err) == 0, err.getvalue()
    text = out.getvalue()
    assert "SESSION" in text and str(procs["nohup"].pid) in text and "ignores SIGHUP" in text, text

    events = [e["event"] for e in _audit(audit)]
    assert events.count("leftover") == 2 and "session-new" in events, events
    stop = next(e for e in _audit(audit) if e["event"] == "session-stop")
    assert stop["action"] == "record" and "permissive" in stop["reason"], stop

    for proc in procs.values():
        signal_proc(proc, 9)
    wait_gone(env, procs.values(), 5)
    wait_session_removed(env, daemon, session)


def test_kill_mode_with_audit_log_records_what_was_killed(env, user, pam, start_daemon):
    audit = env.tmp / "audit.jsonl"
    daemon = start_daemon(f"[Logoutd]\nAuditLog={audit}\n")
    login = env.login("su", pam, user, script("nohup"))
    procs = login.wait_ready()
    env.track(procs.values())
    session = daemon.wait_session(user.name)
    t0 = time.monotonic()
    assert login.logout() == 0, login.report()
    wait_gone(env, procs.values(), 5)
    assert time.monotonic() - t0 < 5
    records = daemon.call("leftovers", session=session["id"])["leftovers"]
    assert [r["action"] for r in records if r["pid"] == procs["nohup"].pid] == ["killed"], records
    signalled = [e for e in _audit(audit) if e["event"] == "signalled"]
    assert signalled and signalled[0]["signals"] == ["SIGTERM", "SIGCONT", "SIGHUP"], signalled
    wait_session_removed(env, daemon, session)


def test_a_user_sees_only_its_own_leftovers(env, user, user2, pam, start_daemon):
    """Issue 11: command lines can hold secrets; another user's records are root's only."""
    daemon = start_daemon("[Login]\nKillUserProcesses=permissive\n")
    sessions, procs = {}, []
    for u in (user, user2):
        extra = (f"nohup bash -c 'sleep 1000; : token-of-{u.name}' >/dev/null 2>&1 </dev/null & "
                 '_p=$!; _comm $_p bash; echo "PID secret $_p"')
        login = env.login("su", pam, u, script(extra=extra))
        found = login.wait_ready()
        env.track(found.values())
        procs += found.values()
        sessions[u.name] = daemon.wait_session(u.name)
        assert login.logout() == 0, login.report()
    for u in (user, user2):
        daemon.wait_for(lambda u=u: daemon.call("leftovers", session=sessions[u.name]["id"])
                        ["leftovers"], 5, f"leftovers of {u.name}")

    status, out, err = astuple(ctl_as(env, user, "leftovers"))
    assert status == 0, err
    assert f"token-of-{user.name}" in out and f"token-of-{user2.name}" not in out, out
    status, out, err = astuple(ctl_as(env, user, "--json", "leftovers"))
    assert status == 0, err
    assert {r["uid"] for r in json.loads(out)["leftovers"]} == {user.uid}, out
    status, out, err = astuple(ctl_as(env, user, "leftovers", "--user", user2.name))
    assert status == 4 and not out, (status, out, err)
    assert f"may not see the leftovers of uid {user2.uid}" in err, err
    status, out, err = astuple(ctl_as(env, user, "leftovers", "--session",
                                             sessions[user2.name]["id"]))
    assert status == 4 and f"token-of-{user2.name}" not in out + err, (status, out, err)
    assert "only root may see other users' leftovers" in err, err

    out_io, err_io = io.StringIO(), io.StringIO()  # root: everyone's
    assert logoutctl(["leftovers"], {"LOGOUTD_SOCKET": str(env.socket)}, out_io, err_io) == 0
    assert all(f"token-of-{u.name}" in out_io.getvalue() for u in (user, user2)), out_io.getvalue()

    for proc in procs:
        signal_proc(proc, 9)
    wait_gone(env, procs, 5)
