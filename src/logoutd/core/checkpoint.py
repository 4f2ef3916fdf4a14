"""Saving on the stop path: a state file that cannot be written must never cost the kill."""

from __future__ import annotations

from collections.abc import Callable

from logoutd.core.context import log
from logoutd.core.timers import Timers
from logoutd.errors import LogoutdError

SAVE_RETRY_SEC = 5.0  # a failed save is tried again this often until it succeeds (or finalize)
_TIMER = "save-retry"


def checkpoint(what: str, save: Callable[[], None], timers: Timers) -> bool:
    """Save; on failure (a full state filesystem) log loudly, retry later and return False.

    The caller goes on with its stop either way: the processes are killed now; what is lost
    while the save fails is only what a daemon crash in that window would redo or skip.
    """
    retrying = _TIMER in timers
    try:
        save()
    except LogoutdError as e:
        if not retrying:  # once per failure streak, not every SAVE_RETRY_SEC
            log.error("%s: cannot save its state (%s); stopping anyway, retrying the save "
                      "every %gs.", what, e.message, SAVE_RETRY_SEC)
        timers.arm(_TIMER, SAVE_RETRY_SEC, lambda: _retry(what, save, timers))
        return False
    if retrying:
        timers.cancel(_TIMER)
        log.info("%s: state saved again.", what)
    return True


def _retry(what: str, save: Callable[[], None], timers: Timers) -> None:
    # The timer has fired (and is no longer armed): mark the streak so it is not logged again.
    timers.arm(_TIMER, SAVE_RETRY_SEC, lambda: _retry(what, save, timers))
    checkpoint(what, save, timers)
