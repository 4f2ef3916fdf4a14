"""logoutctl's daemon verbs against a real daemon: show-config (values and where they come
from), reload, status."""

from __future__ import annotations

import re
import subprocess
import sys

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
    assert result.rc == 16 and result.out == "", result  # applied, but a line was ignored
    warning, final = result.err.splitlines()
    assert warning.startswith(f"{daemon.dropin_dir / '50-test.conf'}:3: SessionsMax=oops: Failed to "
                              "parse uint64 value, ignoring: oops; accepted: an integer"), result
    assert final.startswith("Reloaded, but with 1 warning about ignored lines"), result
    assert ctl(env, "show-config", "KillUserProcesses", "--value").lines == ["yes"]

    daemon.write_dropin("50-test.conf", "[Login]\nSessionsMax=10\n")
    clean = ctl(env, "reload")
    assert (clean.rc, clean.err) == (0, ""), clean

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


def test_reload_after_the_permisive_typo(env, start_daemon):
    """Issue 13: the typo is named with what is accepted, the default that stays, and exit 16."""
    daemon = start_daemon("[Login]\nKillUserProcesses=no\n")
    assert ctl(env, "show-config", "KillUserProcesses", "--value").lines == ["no"]
    dropin = daemon.dropin_dir / "50-test.conf"
    daemon.write_dropin("50-test.conf", "[Login]\nKillUserProcesses=permisive\nSessionsMax=77\n")
    result = ctl(env, "reload")
    assert result.rc == 16 and result.out == "", result
    assert result.err.splitlines() == [
        f"{dropin}:2: KillUserProcesses=permisive: Failed to parse KillUserProcesses= value, ignoring: "
        "permisive; accepted: yes, no or permissive (also 1/0, true/false, on/off, y/n, t/f). "
        "KillUserProcesses=yes (the default) stays in effect.",
        "Reloaded, but with 1 warning about ignored lines (see above); the valid lines apply, and each "
        "warning says which value stays in effect.",
    ], result
    # logind's rule, which the warning spells out: the refused line leaves the default.
    assert ctl(env, "show-config", "KillUserProcesses", "--value").lines == ["yes"]
    assert ctl(env, "show-config", "SessionsMax", "--value").lines == ["77"]  # the valid line applied
    checked = subprocess.run([sys.executable, "-c", "from logoutd.daemon.main import main; "
                              "raise SystemExit(main())", "--check-config", "--root", str(daemon.root)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 16 and f"{dropin}:2: KillUserProcesses=permisive" in checked.stdout


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
