"""[Policy] rules, row by row."""

from __future__ import annotations

import pytest

from logoutd.config.model import Config
from logoutd.core.policy import may_keep, may_linger_self

KEEP_ROWS = [
    # keep_allow_users, keep_allow_groups, user, groups, allowed, words in the rule
    (None, (), "alice", (), True, "everyone"),
    (("bob",), (), "alice", (), False, "not in KeepAllowUsers=bob"),
    (("alice",), (), "alice", (), True, "lists alice"),
    (("@staff",), (), "alice", ("staff",), True, "lists @staff"),
    (("@staff",), (), "alice", ("users",), False, "not in KeepAllowUsers=@staff"),
    (None, ("wheel",), "alice", ("wheel",), True, "KeepAllowGroups= lists wheel"),
    (None, ("wheel",), "alice", ("users",), False, "KeepAllowGroups=wheel"),
    ((), (), "alice", (), False, "KeepAllowUsers=(empty)"),
]


@pytest.mark.parametrize(("users", "groups_allowed", "name", "groups", "allowed", "words"), KEEP_ROWS)
def test_may_keep(users: tuple[str, ...] | None, groups_allowed: tuple[str, ...], name: str,
                  groups: tuple[str, ...], allowed: bool, words: str) -> None:
    decision = may_keep(Config(keep_allow_users=users, keep_allow_groups=groups_allowed), name, groups)
    assert decision.allowed is allowed
    assert words in decision.rule


@pytest.mark.parametrize(("allow", "name", "groups", "allowed"), [
    (None, "alice", (), True),
    (("alice",), "alice", (), True),
    (("bob", "@ops"), "alice", ("ops",), True),
    (("bob",), "alice", ("ops",), False),
])
def test_may_linger_self(allow: tuple[str, ...] | None, name: str, groups: tuple[str, ...],
                         allowed: bool) -> None:
    decision = may_linger_self(Config(linger_self_allow=allow), name, groups)
    assert decision.allowed is allowed and "LingerSelfAllow=" in decision.rule
