"""logoutctl's daemon verbs against a real daemon: show-config (values and where they come
from), reload, status."""

from __future__ import annotations

import re

from tests.integration.harness.ctl import ctl, ctl_as, open_login


def test_show_config_values_and_sources(env, start_daemon):
    daemon = start_daemon("[Login]\n# comment\nKillUserProcesses=no\nKillOnlyUsers=a b\n")
    base = daemon.dropin_dir / "00-base.conf"
    test = daemon.dropin_dir / "50-test.conf"
    result = ctl(env, "show-config")
    assert result.rc == 0, result
    rows = {line.split()[0]: line for line in result.lines[1:] if line.startswith(("Login.",
                                                                               "Logoutd.", "Policy."))}
    assert re.fullmatch(rf"Login\.KillUserProcesses +no +{test}:3", rows["Login.KillUserProcesses"])
    assert re.fullmatch(rf"Login\.KillOnlyUsers +a b +{test}:4", rows["Login.KillOnlyUsers"])
    assert re.fullmatch(rf"Login\.UserStopDelaySec +0 +{base}:2", rows["Login.UserStopDelaySec"])
    assert re.fullmatch(rf"Logoutd\.SessionStopTimeoutSec +2s +{base}:4",
                        rows["Logoutd.SessionStopTimeoutSec"])
    assert re.fullmatch(r"Login\.SessionsMax +8192 +\(default\)", rows["Login.SessionsMax"])
    assert re.fullmatch(r"Login\.KillExcludeUsers +\(default\)", rows["Login.KillExcludeUsers"])
    assert result.lines[0].split() == ["OPTION", "VALUE", "SOURCE"]
    assert result.lines[-3:] == ["", f"Files: {base}", f"       {test}"]
    assert ctl(env, "show-config", "--no-legend").lines == result.lines[1:-3]

    assert ctl(env, "show-config", "killuserprocesses", "Login.SessionsMax", "--value").lines == [
        "no", "8192"]
    unknown = ctl(env, "show-config", "Frobnicate")
    assert (unknown.rc, unknown.err) == (2, "Unknown option 'Frobnicate'.\n")

    document = ctl(env, "show-config", "--json").json()
    assert document["config"]["files"] == [str(base), str(test)]
    [kill] = [o for o in document["config"]["options"] if o["key"] == "KillUserProcesses"]
    assert kill == {"section": "Login", "key": "KillUserProcesses", "value": "no", "unset": False,
                    "source": {"file": str(test), "line": 3}, "doc": kill["doc"]}
    [exclude] = [o for o in document["config"]["options"] if o["key"] == "KillExcludeUsers"]
    assert exclude["unset"] is True and exclude["source"] is None and exclude["value"] == ""


def test_reload_applies_and_reports(env, user, start_daemon):
    daemon = start_daemon("[Login]\nKillUserProcesses=no\n")
    daemon.write_dropin("50-test.conf", "[Login]\nKillUserProcesses=yes\nSessionsMax=oops\n")
    result = ctl(env, "reload")
    assert result.rc == 0 and result.out == "", result
    assert result.err == f"{daemon.dropin_dir / '50-test.conf'}:3: Failed to parse uint64 value, " \
        "ignoring: oops\n", result  # the daemon's warning, with file and line
    assert ctl(env, "show-config", "KillUserProcesses", "--value").lines == ["yes"]

    daemon.write_dropin("50-test.conf", "[Login]\nKillUserProcesses=no\n[Login\n")
    failed = ctl(env, "reload", "--json")
    assert failed.rc == 1, failed
    assert failed.err.startswith("Reload failed, logoutd keeps its previous configuration: ")
    assert "50-test.conf:3" in failed.err and len(failed.err.splitlines()) == 1, failed
    assert failed.json()["reload"]["reloaded"] is False
    assert ctl(env, "show-config", "KillUserProcesses", "--value").lines == ["yes"]

    denied = ctl_as(env, user, "reload")
    assert (denied.rc, denied.err) == (4, "Only root may reload the configuration.\n")
    assert ctl_as(env, user, "show-config", "--no-legend").rc == 0  # anyone may look


def test_status(env, user, pam, daemon):
    open_login(env, pam, user, daemon)
    result = ctl(env, "status")
    assert result.rc == 0, result
    lines = result.lines
    status = daemon.call("status")
    assert lines[0] == f"logoutd {status['version']}"
    assert lines[1] == f"\t     PID: {daemon.popen.pid}"
    assert re.fullmatch(r"\t   Since: .+; (.+ ago|now)", lines[2]), lines[2]
    assert lines[3:8] == [f"\t  Socket: {env.socket}", f"\t  Cgroup: {env.cgroup_root}",
                          "\tSessions: 1", "\t   Users: 1",
                          "\t   D-Bus: not served (started without --dbus)"]
    assert lines[8] == f"\t  Config: {daemon.dropin_dir / '00-base.conf'}"
    document = ctl(env, "status", "--json").json()
    assert document["status"]["sessions"] == 1 and document["status"]["pid"] == daemon.popen.pid
    assert document["status"]["dbus"] is None
    assert ctl_as(env, user, "status").rc == 0
