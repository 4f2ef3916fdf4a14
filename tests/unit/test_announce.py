"""The PAM line the daemon logs at start names its runtime dir when it is not the default."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from logoutd.daemon.main import _announce
from logoutd.paths import Paths
from tests.unit.conftest import make_core


@pytest.mark.parametrize(("runtime_dir", "tail"), [
    ("/run/logoutd", "/usr/local/bin/logoutd-pam"),
    ("/srv/run", "/usr/local/bin/logoutd-pam --runtime-dir /srv/run"),
])
def test_pam_line(caplog: pytest.LogCaptureFixture, runtime_dir: str, tail: str) -> None:
    paths = Paths(runtime_dir=Path(runtime_dir), socket=Path("/elsewhere/api.sock"))
    with caplog.at_level(logging.INFO, logger="logoutd"):
        _announce(paths, make_core().manager)
    [line] = [r.getMessage() for r in caplog.records if "pam_exec.so" in r.getMessage()]
    assert line.endswith(f"seteuid {tail}"), line
