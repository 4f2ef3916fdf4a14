"""[Policy]: who may keep processes past logout, who may linger themselves. Pure; says which rule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from logoutd.config.model import Config


@dataclass(frozen=True)
class PolicyDecision:
    allowed: bool
    rule: str  # the rule that decided, in config words, for the user and the audit log


def _matches(entries: Sequence[str], name: str, groups: Sequence[str]) -> str | None:
    """The entry ("alice" or "@staff") that admits the user, if any."""
    for entry in entries:
        if entry == name or (entry.startswith("@") and entry[1:] in groups):
            return entry
    return None


def may_keep(config: Config, name: str, groups: Sequence[str]) -> PolicyDecision:
    """May this user move processes out of a session (run --scope/--unit, AutoKeep=)?"""
    users, allowed_groups = config.keep_allow_users, config.keep_allow_groups
    if users is None and not allowed_groups:
        return PolicyDecision(True, "KeepAllowUsers= and KeepAllowGroups= unset: everyone may")
    entry = _matches(users or (), name, groups)
    if entry is not None:
        return PolicyDecision(True, f"KeepAllowUsers= lists {entry}")
    group = next((g for g in allowed_groups if g in groups), None)
    if group is not None:
        return PolicyDecision(True, f"KeepAllowGroups= lists {group}")
    listed = " ".join(users or ()) or "(empty)"
    return PolicyDecision(False, f"user {name} is not in KeepAllowUsers={listed} "
                                 f"KeepAllowGroups={' '.join(allowed_groups) or '(empty)'}")


def may_linger_self(config: Config, name: str, groups: Sequence[str]) -> PolicyDecision:
    """May this user turn linger on or off for themselves? (Root may always, for anyone.)"""
    allowed = config.linger_self_allow
    if allowed is None:
        return PolicyDecision(True, "LingerSelfAllow= unset: everyone may")
    entry = _matches(allowed, name, groups)
    if entry is not None:
        return PolicyDecision(True, f"LingerSelfAllow= lists {entry}")
    return PolicyDecision(False, f"user {name} is not in LingerSelfAllow={' '.join(allowed) or '(empty)'}")
