"""Suite-wide: with LOGOUTD_TEST_STRICT=1 (set by .ci/run) a skipped test fails.

Every skip in this suite means "a part is missing here" (root, cgroup2, sshd, dbus-daemon,
dbus-fast, pam_systemd, polkitd, …). `make test` installs all of them, so on CI a skip can only
mean a broken install step, which must not pass as green.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

STRICT = os.environ.get("LOGOUTD_TEST_STRICT") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under LOGOUTD_TEST_STRICT=1 (CI installs everything): {reason}"
