"""The kill decision: logind's manager_shall_kill(), plus forced stops and permissive mode."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from logoutd.config.model import Config, KillMode


class StopAction(enum.StrEnum):
    KILL = "kill"  # SIGTERM+SIGCONT, SIGHUP, SIGKILL after SessionStopTimeoutSec=
    WAIT = "wait"  # abandon the scope; the session stays closing until it empties
    RECORD = "record"  # permissive: abandon, kill nothing, record every leftover process


@dataclass(frozen=True)
class KillDecision:
    action: StopAction
    reason: str

    @property
    def kill(self) -> bool:
        return self.action is StopAction.KILL


def shall_kill(config: Config, user_name: str, *, forced: bool = False) -> KillDecision:
    """Decide what happens to a stopping session's processes, and say why (for the audit log).

    Permissive mode is "yes, but only record": wherever logind would kill, logoutd records.
    """
    if forced:
        return KillDecision(StopAction.KILL, "forced stop (terminate or idle timeout)")
    kill, reason = _logind_shall_kill(config, user_name)
    if not kill:
        return KillDecision(StopAction.WAIT, reason)
    if config.kill_user_processes is KillMode.PERMISSIVE:
        recorded = "KillUserProcesses=permissive: recorded"
        # The setting itself was the reason: say it once.
        return KillDecision(StopAction.RECORD, recorded if reason == "KillUserProcesses=permissive"
                            else f"{reason}; {recorded}")
    return KillDecision(StopAction.KILL, reason)


def _logind_shall_kill(config: Config, user_name: str) -> tuple[bool, str]:
    """manager_shall_kill() of logind v252: exclude > only > KillUserProcesses."""
    exclude = config.kill_exclude_users
    if exclude is None and user_name == "root":
        # Only while the list is unset: any non-empty KillExcludeUsers= drops this exemption.
        return False, "root is exempt while KillExcludeUsers= is unset"
    if exclude is not None and user_name in exclude:
        return False, f"user {user_name} is listed in KillExcludeUsers="
    if config.kill_only_users:
        if user_name in config.kill_only_users:
            return True, f"user {user_name} is listed in KillOnlyUsers="
        return False, f"user {user_name} is not listed in KillOnlyUsers="
    if config.kill_user_processes is KillMode.NO:
        return False, "KillUserProcesses=no"
    return True, f"KillUserProcesses={config.kill_user_processes}"
