"""The SIGTERM round's loop (system/cgroups.signal_round) with an injected pid source and clock."""

from __future__ import annotations

import itertools

from logoutd.system.cgroups import SIGNAL_ROUND_MAX_PASSES, SIGNAL_ROUND_MAX_SEC, signal_round


def test_round_ends_when_a_pass_finds_no_new_pid() -> None:
    reads = iter([[10, 11, 12], [10, 11, 12, 13], [11, 13], [13]])
    sent: list[int] = []
    result = signal_round(lambda: next(reads), sent.append, clock=lambda: 0.0)
    assert sent == [10, 11, 12, 13]  # each pid once, forks caught by the re-read
    assert (result.signalled, result.passes, result.bounded) == (4, 3, False)


def test_empty_cgroup_is_one_pass() -> None:
    result = signal_round(list, lambda pid: None, clock=lambda: 0.0)
    assert (result.signalled, result.passes, result.bounded) == (0, 1, False)


def test_a_fork_storm_is_bounded_by_passes() -> None:
    pids = itertools.count(100)
    sent: list[int] = []
    result = signal_round(lambda: [next(pids), next(pids)], sent.append, clock=lambda: 0.0)
    assert result.bounded and result.passes == SIGNAL_ROUND_MAX_PASSES
    assert result.signalled == len(sent) == 2 * SIGNAL_ROUND_MAX_PASSES


def test_a_fork_storm_is_bounded_by_time() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    pids = itertools.count(100)

    def read() -> list[int]:
        now[0] += SIGNAL_ROUND_MAX_SEC / 4  # each pass takes a quarter of the budget
        return [next(pids)]

    result = signal_round(read, lambda pid: None, clock=clock)
    assert result.bounded and result.passes == 4


def test_the_first_pass_always_signals_everything() -> None:
    """A slow first pass (thousands of pids) still signals all of them before any bound."""
    now = [0.0]

    def send(pid: int) -> None:
        now[0] += 1.0  # far beyond the time bound

    result = signal_round(lambda: range(1, 51), send, clock=lambda: now[0])
    assert result.signalled == 50 and result.passes == 1 and result.bounded


def test_a_given_first_pass_and_pids_signalled_before_are_not_sent_twice() -> None:
    """`first` replaces the first read; `seen` (signalled by the caller) is counted, not resent."""
    reads = iter([[1, 2, 3, 4, 5], [2, 3, 5]])
    sent: list[int] = []
    result = signal_round(lambda: next(reads), sent.append, clock=lambda: 0.0,
                          first=[1, 2], seen=[3, 4])
    assert sent == [1, 2, 5]  # 5 forked after the caller's read: caught by the re-read
    assert (result.signalled, result.passes, result.bounded) == (5, 3, False)
