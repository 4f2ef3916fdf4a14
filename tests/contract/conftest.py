"""Contract tests: what other programs rely on (today logoutctl's --json) must not drift."""

from tests.adapters.conftest import served

__all__ = ["served"]
