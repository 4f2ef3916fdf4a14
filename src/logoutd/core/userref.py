"""What a session or a unit reads of its user (core/users.User, which imports both)."""

from __future__ import annotations

from typing import Protocol

from logoutd.core.ports import Account


class UserRef(Protocol):
    @property
    def uid(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def account(self) -> Account: ...
