"""logoutd.config against logind v252's logind.conf rules, one rule per test, on real files."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import pytest

from logoutd.config import (
    OPTIONS,
    Config,
    ConfigResult,
    ConfigWarning,
    KillMode,
    Source,
    TmpfsSize,
    config_files,
    load_config,
    render_value,
    schema,
    values,
)

MAIN = "etc/systemd/logind.conf"


def dropin(top: str, name: str) -> str:
    return f"{top}/systemd/logind.conf.d/{name}"


def write(root: Path, rel: str, text: str | bytes) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    path.chmod(0o644)
    return str(path)


def load(root: Path, text: str | bytes, rel: str = MAIN) -> tuple[ConfigResult, str]:
    """Write one file, load, return the result and the file's name as warnings spell it."""
    name = write(root, rel, text)
    return load_config(root), name


def messages(result: ConfigResult) -> list[str]:
    return [w.logind for w in result.warnings]


# --- defaults -------------------------------------------------------------------------------


def test_defaults_are_upstream_v252() -> None:
    c = Config()
    assert c.kill_user_processes is KillMode.YES
    assert c.kill_only_users == ()
    assert c.kill_exclude_users is None
    assert c.user_stop_delay_sec == 10.0
    assert c.stop_idle_session_sec == math.inf
    assert c.idle_action_sec == 1800.0
    assert c.remove_ipc is True
    assert c.sessions_max == 8192
    assert c.runtime_directory_size == TmpfsSize(permyriad=1000)
    assert render_value(c.runtime_directory_size) == "10%"
    assert c.session_stop_timeout_sec == 90.0
    assert c.user_stop_timeout_sec == 120.0
    assert c.release_timeout_sec == 20.0
    assert c.audit_log is None
    assert c.keep_allow_users is None
    assert c.keep_allow_groups == ()
    assert c.linger_self_allow is None
    assert c.auto_keep == ()
    assert (c.keep_tmux, c.keep_screen, c.keep_nohup) == (True, True, False)
    assert c.keep_user_while_units is False and c.keep_user_max_sec == math.inf
    assert dict(c.sources) == {}


def test_no_files_gives_defaults(tmp_path: Path) -> None:
    result = load_config(tmp_path)
    assert result == ConfigResult(Config(), (), (), None)


def test_debian_commented_file_changes_nothing(tmp_path: Path) -> None:
    text = "[Login]\n#NAutoVTs=6\n#KillUserProcesses=no\n#KillExcludeUsers=root\n#SessionsMax=8192\n"
    result, name = load(tmp_path, text)
    assert result.config == Config()
    assert result.warnings == ()
    assert result.files == (name,)


def test_sources_are_not_compared_hashed_or_shown(tmp_path: Path) -> None:
    result, _ = load(tmp_path, "[Login]\nKillUserProcesses=yes\n")
    assert result.config == Config()
    assert hash(result.config) == hash(Config())
    assert "sources" not in repr(result.config)
    assert result.config.sources["kill_user_processes"] != Source("x", 1)


# --- booleans -------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["1", "yes", "y", "true", "t", "on", "YES", "True", "oN"])
def test_boolean_true_spellings(tmp_path: Path, word: str) -> None:
    result, _ = load(tmp_path, f"[Login]\nRemoveIPC=no\nRemoveIPC={word}\n")
    assert result.config.remove_ipc is True
    assert result.warnings == ()


@pytest.mark.parametrize("word", ["0", "no", "n", "false", "f", "off", "NO", "False", "OFF"])
def test_boolean_false_spellings(tmp_path: Path, word: str) -> None:
    result, _ = load(tmp_path, f"[Login]\nRemoveIPC={word}\n")
    assert result.config.remove_ipc is False
    assert result.warnings == ()


@pytest.mark.parametrize("word", ["maybe", "2", "yess", "", "enabled"])
def test_invalid_boolean_warns_and_keeps_previous(tmp_path: Path, word: str) -> None:
    result, name = load(tmp_path, f"[Login]\nRemoveIPC=no\nRemoveIPC={word}\n")
    assert result.config.remove_ipc is False
    assert result.config.sources["remove_ipc"] == Source(name, 2)
    assert messages(result) == [f"{name}:3: Failed to parse boolean value, ignoring: {word}"]


@pytest.mark.parametrize(
    ("word", "mode"),
    [("yes", KillMode.YES), ("no", KillMode.NO), ("0", KillMode.NO), ("On", KillMode.YES),
     ("permissive", KillMode.PERMISSIVE), ("Permissive", KillMode.PERMISSIVE)],
)  # fmt: skip
def test_kill_user_processes(tmp_path: Path, word: str, mode: KillMode) -> None:
    result, _ = load(tmp_path, f"[Login]\nKillUserProcesses={word}\n")
    assert result.config.kill_user_processes is mode
    assert result.warnings == ()


def test_kill_user_processes_invalid_keeps_previous(tmp_path: Path) -> None:
    result, name = load(tmp_path, "[Login]\nKillUserProcesses=no\nKillUserProcesses=lenient\n")
    assert result.config.kill_user_processes is KillMode.NO
    assert messages(result) == [f"{name}:3: Failed to parse KillUserProcesses= value, ignoring: lenient"]


# --- what a warning says: file:line, key, bad value, what is accepted, what applies instead ----


def test_permisive_typo_names_key_value_accepted_and_what_stays(tmp_path: Path) -> None:
    result, name = load(tmp_path, "[Login]\nKillUserProcesses=permisive\n")
    assert result.config.kill_user_processes is KillMode.YES
    (warning,) = result.warnings
    where = (warning.file, warning.line, warning.key, warning.value)
    assert where == (name, 2, "KillUserProcesses", "permisive")
    assert warning.ignored
    assert str(warning) == (
        f"{name}:2: KillUserProcesses=permisive: Failed to parse KillUserProcesses= value, ignoring: "
        "permisive; accepted: yes, no or permissive (also 1/0, true/false, on/off, y/n, t/f). "
        "KillUserProcesses=yes (the default) stays in effect."
    )


def test_a_refused_value_names_where_the_kept_one_was_set(tmp_path: Path) -> None:
    result, name = load(tmp_path, "[Logoutd]\nSessionStopTimeoutSec=5\nSessionStopTimeoutSec=5 parsecs\n")
    assert result.config.session_stop_timeout_sec == 5
    assert str(result.warnings[0]).endswith(
        f"; accepted: {values.SEC_ACCEPTED}. SessionStopTimeoutSec=5s (set at {name}:2) stays in effect."
    )


@pytest.mark.parametrize(
    ("line", "accepted"),
    [
        ("[Login]\nRemoveIPC=sometimes", "yes or no"),
        ("[Login]\nSessionsMax=-1", "an integer from 0 to 18446744073709551615"),
        ("[Login]\nRuntimeDirectorySize=lots", "a size in bytes"),
        ("[Login]\nHandleLidSwitch=explode", "halt, hibernate, hybrid-sleep, ignore"),
        ("[Login]\nNAutoVTs=16", "an integer from 0 to 15"),
        ("[Login]\nUserTasksMax=10", "nothing: remove the line"),
        ("[Logoutd]\nAuditLog=audit.jsonl", "an absolute path"),
        ("[Login]\nKillOnlyUsers=a/b", "a user name ("),
        ("[Policy]\nKeepAllowUsers=@a/b", "a user name, or @group"),
        ("[Policy]\nKeepAllowGroups=a:b", "a group name, or @group"),
        ("[Login]\nStopIdleSessionSec=soon", "(0 also means never)"),
        ("[Login]\nKillUserProcesses", "Key=value, a [Section] header"),
        ("[Login]\nKillOnlyUsers='alice", "quoted with matching"),
    ],
)
def test_every_parser_says_what_it_accepts(tmp_path: Path, line: str, accepted: str) -> None:
    result, name = load(tmp_path, line + "\n")
    (warning,) = result.warnings
    assert warning.line == 2 and warning.ignored
    assert accepted in warning.accepted, warning
    assignment = line.split("\n")[1]
    shown = f"{assignment}: " if "=" in assignment else ""  # only an assignment names a key
    assert str(warning).startswith(f"{name}:2: {shown}")


def test_a_refused_word_of_a_list_says_the_rest_applies(tmp_path: Path) -> None:
    result, name = load(tmp_path, "[Login]\nKillOnlyUsers=alice b/c bob\n")
    assert result.config.kill_only_users == ("alice", "bob")
    assert str(result.warnings[0]) == (
        f'{name}:2: KillOnlyUsers=alice b/c bob: Invalid user name "b/c", ignoring. Accepted: a user '
        "name (no ':', '/', control characters or surrounding spaces). The other words of the line apply."
    )


def test_unknown_key_and_section_suggest_the_near_miss(tmp_path: Path) -> None:
    result, name = load(tmp_path, "[Login]\nKillUserProcess=no\n[logoutd]\nAuditLog=\n[Policyy]\n")
    key, section, other = (str(w) for w in result.warnings)
    assert key.startswith(f"{name}:2: KillUserProcess=no: Unknown key name 'KillUserProcess' in section")
    assert key.endswith("Did you mean KillUserProcesses=?")
    assert section.startswith(f"{name}:3: Unknown section 'logoutd'. Ignoring. Accepted: [Login], [Logoutd]")
    assert section.endswith("Its lines are ignored up to the next section. Did you mean [Logoutd]?")
    assert other.endswith("Did you mean [Policy]?")


def test_permission_advice_is_not_an_ignored_line(tmp_path: Path) -> None:
    result, name = load(tmp_path, "[Login]\nRemoveIPC=no\n")
    os.chmod(name, 0o755)
    result = load_config(tmp_path)
    (warning,) = result.warnings
    assert not warning.ignored and "executable" in str(warning)
    assert warning.as_dict()["ignored"] is False and warning.as_dict()["text"] == str(warning)


# --- time spans -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5", 5.0), ("5s", 5.0), ("5sec", 5.0), ("5 second", 5.0), ("5seconds", 5.0),
        ("2m", 120.0), ("2min", 120.0), ("2minute", 120.0), ("2 minutes", 120.0),
        ("1h", 3600.0), ("1hr", 3600.0), ("1hour", 3600.0), ("2hours", 7200.0),
        ("1d", 86400.0), ("1day", 86400.0), ("2days", 172800.0),
        ("1w", 604800.0), ("1week", 604800.0), ("2weeks", 1209600.0),
        ("1M", 2629800.0), ("1month", 2629800.0), ("2months", 5259600.0),
        ("1y", 31557600.0), ("1year", 31557600.0), ("2years", 63115200.0),
        ("500ms", 0.5), ("500msec", 0.5), ("250us", 0.00025), ("250usec", 0.00025),
        ("250\u00b5s", 0.00025),
        ("1min 30s", 90.0), ("1min30s", 90.0), ("1h 1min 1s", 3661.0), ("1.5h", 5400.0),
        (".5s", 0.5), ("0", 0.0), ("infinity", math.inf), ("  infinity  ", math.inf),
    ],
)  # fmt: skip
def test_time_spans(tmp_path: Path, text: str, seconds: float) -> None:
    result, _ = load(tmp_path, f"[Login]\nUserStopDelaySec={text}\n")
    assert result.warnings == ()
    assert result.config.user_stop_delay_sec == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "abc", "-5", "-0", "5x", "5 parsecs", "12.34.56", "3.sec", "infinity s", "Infinity"]
)
def test_invalid_time_span_keeps_previous(tmp_path: Path, text: str) -> None:
    result, name = load(tmp_path, f"[Login]\nUserStopDelaySec=30\nUserStopDelaySec={text}\n")
    assert result.config.user_stop_delay_sec == 30.0
    assert messages(result) == [f"{name}:3: Failed to parse sec value, ignoring: {text}"]


def test_stop_idle_session_zero_means_infinity(tmp_path: Path) -> None:
    result, _ = load(tmp_path, "[Login]\nStopIdleSessionSec=30min\nStopIdleSessionSec=0\n")
    assert result.config.stop_idle_session_sec == math.inf
    result, _ = load(tmp_path, "[Login]\nStopIdleSessionSec=30min\n")
    assert result.config.stop_idle_session_sec == 1800.0


def test_stop_idle_session_invalid_uses_time_value_wording(tmp_path: Path) -> None:
    result, name = load(tmp_path, "[Login]\nStopIdleSessionSec=1h\nStopIdleSessionSec=soon\n")
    assert result.config.stop_idle_session_sec == 3600.0
    assert messages(result) == [f"{name}:3: Failed to parse time value, ignoring: soon"]


def test_logoutd_section_timeouts(tmp_path: Path) -> None:
    text = (
        "[Logoutd]\nSessionStopTimeoutSec=5s\nUserStopTimeoutSec=1min\n"
        "ReleaseTimeoutSec=infinity\nReleaseTimeoutSec=nope\n"
    )
    result, name = load(tmp_path, text)
    c = result.config
    assert (c.session_stop_timeout_sec, c.user_stop_timeout_sec) == (5.0, 60.0)
    assert c.release_timeout_sec == math.inf
    assert messages(result) == [f"{name}:5: Failed to parse sec value, ignoring: nope"]


def test_idle_action_sec(tmp_path: Path) -> None:
    result, _ = load(tmp_path, "[Login]\nIdleActionSec=15min\n")
    assert result.config.idle_action_sec == 900.0


# --- numbers and sizes ----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("100", 100), ("0", 0), ("0x10", 16), (" 7", 7)])
def test_sessions_max(tmp_path: Path, text: str, value: int) -> None:
    result, _ = load(tmp_path, f"[Login]\nSessionsMax={text}\n")
    assert result.config.sessions_max == value
    assert result.warnings == ()


@pytest.mark.parametrize("text", ["abc", "-1", "1.5", "", "18446744073709551616", "1_000"])
def test_sessions_max_invalid(tmp_path: Path, text: str) -> None:
    result, name = load(tmp_path, f"[Login]\nSessionsMax=10\nSessionsMax={text}\n")
    assert result.config.sessions_max == 10
    assert messages(result) == [f"{name}:3: Failed to parse uint64 value, ignoring: {text}"]


@pytest.mark.parametrize(
    ("text", "value", "shown"),
    [("64M", TmpfsSize(size=64 << 20), "64M"), ("1G", TmpfsSize(size=1 << 30), "1G"),
     ("1G 512M", TmpfsSize(size=1536 << 20), "1536M"),
     ("1.5G", TmpfsSize(size=1536 << 20), "1536M"), ("4096", TmpfsSize(size=4096), "4K"),
     ("1000", TmpfsSize(size=1000), "1000"), ("25%", TmpfsSize(permyriad=2500), "25%"),
     ("10.5%", TmpfsSize(permyriad=1050), "10.5%"),
     ("10.25%", TmpfsSize(permyriad=1025), "10.25%"),
     ("100%", TmpfsSize(permyriad=10000), "100%"), ("5\u2030", TmpfsSize(permyriad=50), "0.5%"),
     ("3\u2031", TmpfsSize(permyriad=3), "0.03%")],
)  # fmt: skip
def test_runtime_directory_size_parsed_once(tmp_path: Path, text: str, value: TmpfsSize,
                                           shown: str) -> None:
    """Typed in Config, nothing downstream parses it; show-config's text parses back to it."""
    result, _ = load(tmp_path, f"[Login]\nRuntimeDirectorySize={text}\n")
    assert result.config.runtime_directory_size == value
    assert result.warnings == ()
    assert render_value(value) == shown
    assert values.parse_tmpfs_size(shown) == value


@pytest.mark.parametrize(
    ("text", "reason"),
    [("abc", "Invalid argument"), ("0", "Numerical result out of range"),
     ("0%", "Invalid argument"), ("150%", "Invalid argument"), ("512M 1G", "Invalid argument"),
     ("-1M", "Numerical result out of range"), ("", "Invalid argument")],
)  # fmt: skip
def test_runtime_directory_size_invalid(tmp_path: Path, text: str, reason: str) -> None:
    result, name = load(tmp_path, f"[Login]\nRuntimeDirectorySize=64M\nRuntimeDirectorySize={text}\n")
    assert result.config.runtime_directory_size == TmpfsSize(size=64 << 20)
    assert messages(result) == [f"{name}:3: Failed to parse size value '{text}', ignoring: {reason}"]


# --- logind's own keys ----------------------------------------------------------------------


def test_logind_only_keys_accepted_silently_and_not_stored(tmp_path: Path) -> None:
    text = (
        "[Login]\nNAutoVTs=6\nReserveVT=6\nInhibitDelayMaxSec=5\nHandlePowerKey=poweroff\n"
        "HandlePowerKeyLongPress=ignore\nHandleRebootKey=reboot\nHandleRebootKeyLongPress=poweroff\n"
        "HandleSuspendKey=suspend\nHandleSuspendKeyLongPress=hibernate\n"
        "HandleHibernateKey=hibernate\nHandleHibernateKeyLongPress=ignore\n"
        "HandleLidSwitch=suspend\nHandleLidSwitchExternalPower=suspend\n"
        "HandleLidSwitchDocked=ignore\nPowerKeyIgnoreInhibited=no\nSuspendKeyIgnoreInhibited=no\n"
        "HibernateKeyIgnoreInhibited=no\nLidSwitchIgnoreInhibited=yes\n"
        "RebootKeyIgnoreInhibited=no\nHoldoffTimeoutSec=30s\nIdleAction=lock\n"
        "RuntimeDirectoryInodesMax=1000\nInhibitorsMax=8192\n"
    )
    result, _ = load(tmp_path, text)
    assert result.warnings == ()
    assert result.config == Config()
    assert dict(result.config.sources) == {}


def test_logind_only_keys_get_logind_warnings(tmp_path: Path) -> None:
    text = "[Login]\nHandlePowerKey=explode\nNAutoVTs=16\nNAutoVTs=x\nHoldoffTimeoutSec=soon\n"
    result, name = load(tmp_path, text)
    assert messages(result) == [
        f"{name}:2: Failed to parse handle action setting, ignoring: explode",
        f"{name}:3: A maximum of 15 autovts are supported, ignoring: 16",
        f"{name}:4: Failed to parse number of autovts, ignoring: x",
        f"{name}:5: Failed to parse sec value, ignoring: soon",
    ]


def test_user_tasks_max_gives_logind_notice(tmp_path: Path) -> None:
    result, name = load(tmp_path, "[Login]\nUserTasksMax=33%\n")
    assert messages(result) == [f"{name}:2: Support for option UserTasksMax= has been removed."]
    assert result.config == Config()


# --- line grammar ---------------------------------------------------------------------------


def test_comments_hash_and_semicolon(tmp_path: Path) -> None:
    text = "# c\n; c\n[Login]\n  # RemoveIPC=no\n\t; RemoveIPC=no\nSessionsMax=5\n"
    result, name = load(tmp_path, text)
    assert result.config.remove_ipc is True
    assert result.config.sources["sessions_max"] == Source(name, 6)
    assert result.warnings == ()


def test_no_inline_comments(tmp_path: Path) -> None:
    result, _ = load(tmp_path, "[Login]\nKillOnlyUsers=alice # bob\n")
    assert result.config.kill_only_users == ("alice", "#", "bob")


def test_whitespace_around_key_and_value_is_stripped(tmp_path: Path) -> None:
    result, _ = load(tmp_path, "  [Login]  \n \t SessionsMax \t=  42 \t\n")
    assert result.config.sessions_max == 42
    assert result.warnings == ()


def test_line_continuation(tmp_path: Path) -> None:
    text = "[Login]\nKillOnlyUsers=alice \\\n  bob\\\n# a comment inside\ncarol\nSessionsMax=3\n"
    result, name = load(tmp_path, text)
    # "bob\" + "carol": the backslash becomes a space
    assert result.config.kill_only_users == ("alice", "bob", "carol")
    assert result.config.sources["kill_only_users"] == Source(name, 5)
    assert result.config.sessions_max == 3


def test_escaped_backslash_does_not_continue(tmp_path: Path) -> None:
    result, _ = load(tmp_path, "[Login]\nKillOnlyUsers=a\\\\\nSessionsMax=3\n")
    assert result.config.kill_only_users == ("a\\\\",)
    assert result.config.sessions_max == 3


def test_continuation_ended_by_end_of_file(tmp_path: Path) -> None:
    result, _ = load(tmp_path, "[Login]\nKillOnlyUsers=alice \\")
    assert result.config.kill_only_users == ("alice",)


def test_continuation_ended_by_empty_line(tmp_path: Path) -> None:
    result, _ = load(tmp_path, "[Login]\nKillOnlyUsers=alice \\\n\nSessionsMax=3\n")
    assert result.config.kill_only_users == ("alice",)
    assert result.config.sessions_max == 3


def test_keys_and_sections_are_case_sensitive(tmp_path: Path) -> None:
    text = "[Login]\nkilluserprocesses=no\n[login]\nKillUserProcesses=no\n"
    result, name = load(tmp_path, text)
    assert result.config.kill_user_processes is KillMode.YES
    assert messages(result) == [
        f"{name}:2: Unknown key name 'killuserprocesses' in section 'Login', ignoring.",
        f"{name}:3: Unknown section 'login'. Ignoring.",
    ]


def test_unknown_section_and_its_keys(tmp_path: Path) -> None:
    text = "[Seat]\nFoo=1\nRemoveIPC=no\n[Login]\nSessionsMax=7\n"
    result, name = load(tmp_path, text)
    assert result.config.remove_ipc is True
    assert result.config.sessions_max == 7
    assert messages(result) == [f"{name}:1: Unknown section 'Seat'. Ignoring."]


def test_x_sections_and_x_keys_are_silent(tmp_path: Path) -> None:
    text = "[X-Vendor]\nAnything=1\n[Login]\nX-Note=hello\nSessionsMax=7\n"
    result, _ = load(tmp_path, text)
    assert result.warnings == ()
    assert result.config.sessions_max == 7


def test_assignment_outside_of_section(tmp_path: Path) -> None:
    result, name = load(tmp_path, "RemoveIPC=no\n[Login]\n")
    assert result.config.remove_ipc is True
    assert messages(result) == [f"{name}:1: Assignment outside of section. Ignoring."]


def test_missing_equals_and_missing_key(tmp_path: Path) -> None:
    result, name = load(tmp_path, "[Login]\nRemoveIPC no\n=no\nSessionsMax=9\n")
    assert result.config.remove_ipc is True
    assert result.config.sessions_max == 9
    assert messages(result) == [
        f"{name}:2: Missing '=', ignoring line.",
        f"{name}:3: Missing key name before '=', ignoring line.",
    ]


def test_unknown_key_warns(tmp_path: Path) -> None:
    result, name = load(tmp_path, "[Policy]\nKeepAllowEveryone=yes\n")
    assert messages(result) == [
        f"{name}:2: Unknown key name 'KeepAllowEveryone' in section 'Policy', ignoring."
    ]


def test_keys_belong_to_their_section(tmp_path: Path) -> None:
    result, name = load(tmp_path, "[Logoutd]\nRemoveIPC=no\n")
    assert result.config.remove_ipc is True
    assert messages(result) == [f"{name}:2: Unknown key name 'RemoveIPC' in section 'Logoutd', ignoring."]


def test_crlf_line_endings_and_bom(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf[Login]\r\nSessionsMax=11\r\nRemoveIPC=no\r\n"
    result, name = load(tmp_path, data)
    assert result.warnings == ()
    assert result.config.sessions_max == 11
    assert result.config.remove_ipc is False
    assert result.config.sources["remove_ipc"] == Source(name, 3)


def test_value_may_contain_equals(tmp_path: Path) -> None:
    result, _ = load(tmp_path, "[Login]\nKillOnlyUsers=a=b\n")
    assert result.config.kill_only_users == ("a=b",)


# --- lists ----------------------------------------------------------------------------------


def test_list_words_and_quotes(tmp_path: Path) -> None:
    text = '[Login]\nKillOnlyUsers=alice \t bob "carol x" \'dave\' e"f g"h\n'
    result, _ = load(tmp_path, text)
    assert result.config.kill_only_users == ("alice", "bob", "carol x", "dave", "ef gh")
    assert result.warnings == ()


def test_list_unbalanced_quote_keeps_words_before_it(tmp_path: Path) -> None:
    result, name = load(tmp_path, '[Login]\nKillOnlyUsers=alice "bob\n')
    assert result.config.kill_only_users == ("alice",)
    assert messages(result) == [f'{name}:2: Invalid syntax, ignoring: alice "bob']


def test_list_accumulates_across_lines_and_files(tmp_path: Path) -> None:
    write(tmp_path, MAIN, "[Login]\nKillOnlyUsers=alice\nKillOnlyUsers=bob carol\n")
    name = write(tmp_path, dropin("etc", "10-more.conf"), "[Login]\nKillOnlyUsers=dave\n")
    result = load_config(tmp_path)
    assert result.config.kill_only_users == ("alice", "bob", "carol", "dave")
    assert result.config.sources["kill_only_users"] == Source(name, 2)


def test_empty_assignment_resets_list(tmp_path: Path) -> None:
    write(tmp_path, MAIN, "[Login]\nKillOnlyUsers=alice bob\n")
    write(tmp_path, dropin("usr/lib", "10-reset.conf"), "[Login]\nKillOnlyUsers=\nKillOnlyUsers=x\n")
    name = write(tmp_path, dropin("run", "20-reset.conf"), "[Login]\nKillOnlyUsers=   \n")
    result = load_config(tmp_path)
    assert result.config.kill_only_users == ()
    assert result.config.sources["kill_only_users"] == Source(name, 2)


def test_reset_then_append(tmp_path: Path) -> None:
    result, _ = load(tmp_path, "[Login]\nKillOnlyUsers=a b\nKillOnlyUsers=\nKillOnlyUsers=c\n")
    assert result.config.kill_only_users == ("c",)


def test_kill_exclude_users_unset(tmp_path: Path) -> None:
    result, _ = load(tmp_path, "[Login]\nKillUserProcesses=yes\n")
    assert result.config.kill_exclude_users is None


def test_kill_exclude_users_empty_assignment_is_unset(tmp_path: Path) -> None:
    result, name = load(tmp_path, "[Login]\nKillExcludeUsers=root alice\nKillExcludeUsers=\n")
    assert result.config.kill_exclude_users is None
    assert result.config.sources["kill_exclude_users"] == Source(name, 3)


def test_kill_exclude_users_non_empty(tmp_path: Path) -> None:
    result, _ = load(tmp_path, "[Login]\nKillExcludeUsers=alice\n")
    assert result.config.kill_exclude_users == ("alice",)


def test_invalid_user_names_warn_per_entry(tmp_path: Path) -> None:
    result, name = load(tmp_path, '[Login]\nKillOnlyUsers=alice a/b "" bob :x\n')
    assert result.config.kill_only_users == ("alice", "bob")
    assert messages(result) == [
        f'{name}:2: Invalid user name "a/b", ignoring.',
        f'{name}:2: Invalid user name "", ignoring.',
        f'{name}:2: Invalid user name ":x", ignoring.',
    ]


def test_refused_entries_still_set_the_list(tmp_path: Path) -> None:
    # logind would store ["a/b"]: root is no longer implicitly excluded.
    result, _ = load(tmp_path, "[Login]\nKillExcludeUsers=a/b\n")
    assert result.config.kill_exclude_users == ()


def test_a_line_of_refused_entries_is_never_a_source(tmp_path: Path) -> None:
    # show-config names each value's source: never a line that was ignored as invalid.
    result, name = load(tmp_path, "[Login]\nKillOnlyUsers=alice\nKillOnlyUsers=a/b\n"
                                  "SessionsMax=lots\nKillExcludeUsers=c/d\n")
    c = result.config
    assert c.kill_only_users == ("alice",) and c.source("kill_only_users") == Source(name, 2)
    assert c.source("sessions_max") is None
    # Unset to set (root's exemption dropped) is a change that line made: it is the source.
    assert c.kill_exclude_users == () and c.source("kill_exclude_users") == Source(name, 5)


def test_policy_lists_users_and_groups(tmp_path: Path) -> None:
    text = (
        "[Policy]\nKeepAllowUsers=alice @wheel\nKeepAllowGroups=staff @adm\n"
        "LingerSelfAllow=@users bob\nLingerSelfAllow=@ @a/b c/d\n"
    )
    result, name = load(tmp_path, text)
    c = result.config
    assert c.keep_allow_users == ("alice", "@wheel")
    assert c.keep_allow_groups == ("staff", "adm")
    assert c.linger_self_allow == ("@users", "bob")
    assert messages(result) == [
        f'{name}:5: Invalid group name "@", ignoring.',
        f'{name}:5: Invalid group name "@a/b", ignoring.',
        f'{name}:5: Invalid user name "c/d", ignoring.',
    ]


def test_policy_empty_assignment_resets_to_everyone(tmp_path: Path) -> None:
    text = "[Policy]\nKeepAllowUsers=alice\nKeepAllowUsers=\nLingerSelfAllow=bob\n"
    result, _ = load(tmp_path, text)
    assert result.config.keep_allow_users is None
    assert result.config.linger_self_allow == ("bob",)


def test_auto_keep_paths(tmp_path: Path) -> None:
    text = "[Policy]\nAutoKeep=/usr/bin/tmux //usr/bin/./screen tmux /usr/../bin/sh\n"
    result, name = load(tmp_path, text)
    assert result.config.auto_keep == ("/usr/bin/tmux", "/usr/bin/screen")
    assert messages(result) == [
        f"{name}:2: AutoKeep= path is not absolute, ignoring: tmux",
        f"{name}:2: AutoKeep= path is not normalized, ignoring: /usr/../bin/sh",
    ]


def test_shell_keep_and_keep_user_keys(tmp_path: Path) -> None:
    text = ("[Policy]\nKeepNohup=yes\nKeepTmux=no\nKeepScreen=maybe\nKeepUserWhileUnits=yes\n"
            "KeepUserMaxSec=2h\n")
    result, name = load(tmp_path, text)
    c = result.config
    assert (c.keep_tmux, c.keep_screen, c.keep_nohup) == (False, True, True)
    assert c.keep_user_while_units is True and c.keep_user_max_sec == 7200.0
    assert messages(result) == [f"{name}:4: Failed to parse boolean value, ignoring: maybe"]


def test_audit_log(tmp_path: Path) -> None:
    text = "[Logoutd]\nAuditLog=/var/log/logoutd/audit.jsonl\nAuditLog=audit.jsonl\n"
    result, name = load(tmp_path, text)
    assert result.config.audit_log == "/var/log/logoutd/audit.jsonl"
    assert messages(result) == [f"{name}:3: AuditLog= path is not absolute, ignoring: audit.jsonl"]
    result, _ = load(tmp_path, "[Logoutd]\nAuditLog=/a\nAuditLog=\n")
    assert result.config.audit_log is None


# --- files and precedence -------------------------------------------------------------------


def test_config_files_order_and_same_basename(tmp_path: Path) -> None:
    main = write(tmp_path, MAIN, "")
    etc = write(tmp_path, dropin("etc", "50-x.conf"), "")
    write(tmp_path, dropin("run", "50-x.conf"), "")
    write(tmp_path, dropin("usr/lib", "50-x.conf"), "")
    run = write(tmp_path, dropin("run", "60-y.conf"), "")
    usr = write(tmp_path, dropin("usr/lib", "10-z.conf"), "")
    local = write(tmp_path, dropin("usr/local/lib", "20-w.conf"), "")
    write(tmp_path, dropin("usr/lib", "20-w.conf"), "")
    write(tmp_path, dropin("etc", ".hidden.conf"), "")
    write(tmp_path, dropin("etc", "notes.txt"), "")
    write(tmp_path, dropin("etc", "70.conf.bak"), "")
    assert [str(p) for p in config_files(tmp_path)] == [main, usr, local, etc, run]


def test_dropins_override_main_and_sort_by_basename(tmp_path: Path) -> None:
    write(tmp_path, MAIN, "[Login]\nSessionsMax=1\nRemoveIPC=no\nUserStopDelaySec=1\n")
    write(tmp_path, dropin("usr/lib", "10-a.conf"), "[Login]\nSessionsMax=2\nRemoveIPC=yes\n")
    b = write(tmp_path, dropin("etc", "20-b.conf"), "[Login]\nSessionsMax=3\n")
    c = write(tmp_path, dropin("usr/lib", "30-c.conf"), "[Login]\nRemoveIPC=no\n")
    result = load_config(tmp_path)
    assert result.config.sessions_max == 3  # /etc's 20-b after /usr/lib's 10-a
    assert result.config.remove_ipc is False  # /usr/lib's 30-c after /etc's 20-b
    assert result.config.user_stop_delay_sec == 1.0
    assert result.config.sources["sessions_max"] == Source(b, 2)
    assert result.config.sources["remove_ipc"] == Source(c, 2)


@pytest.mark.parametrize(
    ("winner", "losers"),
    [("etc", ["run", "usr/local/lib", "usr/lib"]), ("run", ["usr/local/lib", "usr/lib"]),
     ("usr/local/lib", ["usr/lib"])],
)  # fmt: skip
def test_same_basename_earlier_directory_wins(tmp_path: Path, winner: str, losers: list[str]) -> None:
    for top in losers:
        write(tmp_path, dropin(top, "50-x.conf"), "[Login]\nSessionsMax=1\nRemoveIPC=no\n")
    name = write(tmp_path, dropin(winner, "50-x.conf"), "[Login]\nSessionsMax=2\n")
    result = load_config(tmp_path)
    assert result.config.sessions_max == 2
    assert result.config.remove_ipc is True
    assert result.files == (name,)


def test_dev_null_symlink_masks(tmp_path: Path) -> None:
    write(tmp_path, dropin("usr/lib", "50-kill.conf"), "[Login]\nKillUserProcesses=no\n")
    mask = tmp_path / dropin("etc", "50-kill.conf")
    mask.parent.mkdir(parents=True)
    mask.symlink_to("/dev/null")
    result = load_config(tmp_path)
    assert result.config.kill_user_processes is KillMode.YES
    assert result.files == (str(mask),)
    assert result.warnings == ()


def test_empty_file_masks(tmp_path: Path) -> None:
    write(tmp_path, dropin("usr/lib", "50-kill.conf"), "[Login]\nKillUserProcesses=no\n")
    write(tmp_path, dropin("run", "50-kill.conf"), "")
    assert load_config(tmp_path).config.kill_user_processes is KillMode.YES


def test_dangling_symlink_is_skipped_but_still_hides(tmp_path: Path) -> None:
    write(tmp_path, dropin("usr/lib", "50-kill.conf"), "[Login]\nKillUserProcesses=no\n")
    link = tmp_path / dropin("etc", "50-kill.conf")
    link.parent.mkdir(parents=True)
    link.symlink_to(tmp_path / "missing")
    result = load_config(tmp_path)
    assert result.config.kill_user_processes is KillMode.YES
    assert result.files == ()
    assert result.fatal is None


def test_sections_logoutd_and_policy_read_from_dropins(tmp_path: Path) -> None:
    text = "[Logoutd]\nSessionStopTimeoutSec=3\n[Policy]\nAutoKeep=/usr/bin/tmux\n"
    write(tmp_path, dropin("run", "90-logoutd.conf"), text)
    c = load_config(tmp_path).config
    assert (c.session_stop_timeout_sec, c.auto_keep) == (3.0, ("/usr/bin/tmux",))


def test_sources_record_file_and_line(tmp_path: Path) -> None:
    main = write(tmp_path, MAIN, "[Login]\n\nSessionsMax=5\n[Logoutd]\nAuditLog=/x\n")
    d = write(tmp_path, dropin("etc", "1.conf"), "# x\n[Policy]\nAutoKeep=/a\nAutoKeep=/b\n")
    c = load_config(tmp_path).config
    assert dict(c.sources) == {
        "sessions_max": Source(main, 3),
        "audit_log": Source(main, 5),
        "auto_keep": Source(d, 4),
    }
    assert c.source("remove_ipc") is None
    assert str(c.sources["sessions_max"]) == f"{main}:3"


def test_permission_warnings(tmp_path: Path) -> None:
    name = write(tmp_path, MAIN, "[Login]\n")
    os.chmod(name, 0o757)
    result = load_config(tmp_path)
    assert messages(result) == [
        f"{name}: Configuration file {name} is marked executable. "
        "Please remove executable permission bits. Proceeding anyway.",
        f"{name}: Configuration file {name} is marked world-writable. "
        "Please remove world writability permission bits. Proceeding anyway.",
    ]


# --- fatal errors ---------------------------------------------------------------------------


def test_fatal_header_stops_later_dropins_keeps_earlier_values(tmp_path: Path) -> None:
    main = write(tmp_path, MAIN, "[Login]\nSessionsMax=1\n")
    a = write(tmp_path, dropin("etc", "10-a.conf"), "[Login]\nRemoveIPC=no\n[Login\nSessionsMax=2\n")
    write(tmp_path, dropin("etc", "20-b.conf"), "[Login]\nUserStopDelaySec=1\n")
    result = load_config(tmp_path)
    assert result.config.sessions_max == 1
    assert result.config.remove_ipc is False
    assert result.config.user_stop_delay_sec == 10.0
    assert result.fatal == ConfigWarning(a, 3, "Invalid section header '[Login'")
    assert result.files == (main, a)
    assert result.warnings == ()


def test_bad_characters_in_section_header_are_fatal(tmp_path: Path) -> None:
    result, name = load(tmp_path, '[Login]\nSessionsMax=4\n[Lo"gin]\nSessionsMax=5\n')
    assert result.config.sessions_max == 4
    assert result.fatal == ConfigWarning(name, 3, "Bad characters in section header '[Lo\"gin]'")


def test_non_utf8_line_is_fatal(tmp_path: Path) -> None:
    write(tmp_path, dropin("etc", "20-b.conf"), "[Login]\nSessionsMax=7\n")
    data = b"[Login]\n# caf\xe9 in a comment is fine\nRemoveIPC=no\nKillOnlyUsers=caf\xe9\nSessionsMax=3\n"
    name = write(tmp_path, dropin("etc", "10-a.conf"), data)
    result = load_config(tmp_path)
    assert result.config.remove_ipc is False
    assert result.config.kill_only_users == ()
    assert result.config.sessions_max == 8192
    assert result.fatal == ConfigWarning(
        name, 4, "String is not UTF-8 clean, ignoring assignment: KillOnlyUsers=caf\ufffd"
    )


def test_line_of_one_mib_is_fatal(tmp_path: Path) -> None:
    data = b"[Login]\nRemoveIPC=no\n# " + b"x" * ((1 << 20) - 2) + b"\nSessionsMax=3\n"
    result, name = load(tmp_path, data)
    assert result.config.remove_ipc is False
    assert result.config.sessions_max == 8192
    assert result.fatal == ConfigWarning(name, 3, "Line too long")


def test_line_just_below_one_mib_is_fine(tmp_path: Path) -> None:
    line = b"# " + b"x" * ((1 << 20) - 3)
    result, _ = load(tmp_path, b"[Login]\n" + line + b"\nSessionsMax=3\n")
    assert result.fatal is None
    assert result.config.sessions_max == 3


def test_unreadable_main_file_is_fatal(tmp_path: Path) -> None:
    (tmp_path / MAIN).mkdir(parents=True)  # reading a directory fails like an unreadable file
    write(tmp_path, dropin("etc", "10-a.conf"), "[Login]\nSessionsMax=3\n")
    result = load_config(tmp_path)
    assert result.config == Config()
    assert result.files == ()
    assert result.fatal == ConfigWarning(
        str(tmp_path / MAIN), 0, "Error while reading configuration file: Is a directory"
    )


def test_warning_format() -> None:
    assert str(ConfigWarning("/etc/x.conf", 7, "Missing '=', ignoring line.")) == (
        "/etc/x.conf:7: Missing '=', ignoring line."
    )
    assert str(ConfigWarning("/etc/x.conf", 0, "Line too long")) == "/etc/x.conf: Line too long"


# --- the schema -----------------------------------------------------------------------------


def test_every_field_has_exactly_one_row() -> None:
    fields = [f.name for f in dataclasses.fields(Config) if f.name != "sources"]
    stored = [o.field for o in OPTIONS if o.field is not None]
    assert sorted(stored) == sorted(fields)


def test_rows_are_unique_and_documented_in_one_line() -> None:
    keys = [(o.section, o.key) for o in OPTIONS]
    assert len(keys) == len(set(keys))
    for option in OPTIONS:
        assert option.section in schema.SECTIONS
        assert option.doc and "\n" not in option.doc and len(option.doc) <= 120, option.key


def test_list_rows_match_tuple_fields() -> None:
    lists = {o.field for o in OPTIONS if o.is_list}
    assert lists == {
        "kill_only_users", "kill_exclude_users", "keep_allow_users", "keep_allow_groups",
        "linger_self_allow", "auto_keep",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("value", "text"),
    [(90.0, "1min 30s"), (1800.0, "30min"), (0.5, "500ms"), (math.inf, "infinity"), (0.0, "0"),
     (True, "yes"), (False, "no"), (None, ""), (KillMode.PERMISSIVE, "permissive"),
     (("alice", "bob smith"), "alice 'bob smith'"), (8192, "8192"),
     (TmpfsSize(permyriad=1000), "10%"), (TmpfsSize(size=3 << 40), "3T")],
)  # fmt: skip
def test_render_value(value: object, text: str) -> None:
    assert render_value(value) == text


@pytest.mark.parametrize("seconds", [0.0, 0.001, 10.0, 90.0, 3661.5, 2629800.0, 31557600.0 * 2])
def test_rendered_time_spans_parse_back(seconds: float) -> None:
    assert values.parse_sec(values.format_timespan(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "size"),
    [("10%", 1_717_985_280), ("100%", 17_179_869_184), ("10.5%", 1_803_882_496),
     ("5\u2030", 85_897_216), ("64M", 67_108_864), ("1.5G", 1_610_612_736),
     ("1G 512M", 1_610_612_736), ("1000", 4096), ("4097", 8192)],
)  # fmt: skip
def test_tmpfs_size_bytes_as_logind_mounts_it(text: str, size: int) -> None:
    parsed = values.parse_tmpfs_size(text)
    assert parsed.bytes(physical_memory=16 * 1024**3, page_size=4096) == size


def test_tmpfs_size_bytes_of_this_machine() -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    memory = page * os.sysconf("SC_PHYS_PAGES")
    assert TmpfsSize(permyriad=10000).bytes() == memory
    assert TmpfsSize(permyriad=1000).bytes() == memory // page * 1000 // 10000 * page
    assert TmpfsSize(size=page + 1).bytes() == 2 * page
