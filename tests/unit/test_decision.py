"""The kill decision, row by row against logind v252's manager_shall_kill() (reference §1.5)."""

from __future__ import annotations

import pytest

from logoutd.config.model import Config, KillMode
from logoutd.core.decision import StopAction, shall_kill

K, W, R = StopAction.KILL, StopAction.WAIT, StopAction.RECORD

ROWS = [
    # kill_user_processes, only, exclude, user, expected
    (KillMode.YES, (), None, "alice", K),
    (KillMode.NO, (), None, "alice", W),
    (KillMode.PERMISSIVE, (), None, "alice", R),
    (KillMode.YES, (), None, "root", W),  # implicit root exemption while exclude is unset
    (KillMode.YES, (), ("bob",), "root", K),  # any non-empty exclude list drops it
    (KillMode.YES, (), ("root",), "root", W),
    (KillMode.YES, (), ("alice",), "alice", W),
    (KillMode.YES, ("alice",), None, "alice", K),
    (KillMode.YES, ("alice",), None, "bob", W),  # only-list excludes everyone else
    (KillMode.NO, ("alice",), None, "alice", K),  # only-list makes the boolean irrelevant
    (KillMode.NO, ("alice",), None, "bob", W),
    (KillMode.YES, ("alice",), ("alice",), "alice", W),  # exclude beats only
    (KillMode.YES, ("root",), None, "root", W),  # root exemption beats only
    (KillMode.YES, ("root",), ("bob",), "root", K),
    (KillMode.PERMISSIVE, ("alice",), None, "alice", R),  # permissive records wherever it would kill
    (KillMode.PERMISSIVE, (), None, "root", W),
]


@pytest.mark.parametrize(("mode", "only", "exclude", "user", "expected"), ROWS)
def test_truth_table(mode: KillMode, only: tuple[str, ...], exclude: tuple[str, ...] | None,
                     user: str, expected: StopAction) -> None:
    config = Config(kill_user_processes=mode, kill_only_users=only, kill_exclude_users=exclude)
    decision = shall_kill(config, user)
    assert decision.action is expected
    assert decision.reason  # the audit log records why


@pytest.mark.parametrize("mode", list(KillMode))
def test_forced_stop_always_kills(mode: KillMode) -> None:
    config = Config(kill_user_processes=mode, kill_exclude_users=("alice",))
    assert shall_kill(config, "alice", forced=True).action is K
    assert shall_kill(config, "root", forced=True).action is K


def test_reasons_name_the_rule() -> None:
    assert "KillExcludeUsers" in shall_kill(Config(kill_exclude_users=("a",)), "a").reason
    assert "KillOnlyUsers" in shall_kill(Config(kill_only_users=("a",)), "b").reason
    assert "root" in shall_kill(Config(), "root").reason
    assert shall_kill(Config(), "a").reason == "KillUserProcesses=yes"


def test_the_permissive_reason_is_said_once() -> None:
    plain = shall_kill(Config(kill_user_processes=KillMode.PERMISSIVE), "alice")
    assert plain.reason == "KillUserProcesses=permissive: recorded"
    listed = shall_kill(Config(kill_user_processes=KillMode.PERMISSIVE, kill_only_users=("alice",)),
                        "alice")
    assert listed.reason == "user alice is listed in KillOnlyUsers=; " \
        "KillUserProcesses=permissive: recorded"
