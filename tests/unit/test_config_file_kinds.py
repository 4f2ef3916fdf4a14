"""A config file that is not a regular file is one fatal line, read without blocking: a FIFO
would hang the daemon's loop, /dev/zero fill its memory; /dev/null stays a mask."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from logoutd.config.parse import load_config

DROPIN = "etc/systemd/logind.conf.d"


@pytest.mark.parametrize(("make", "kind"), [
    (lambda p: os.mkfifo(p), "a FIFO"),
    (lambda p: p.symlink_to("/dev/zero"), "a character device"),
])
def test_a_fifo_or_device_is_fatal_and_never_read(tmp_path: Path, make, kind: str) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / DROPIN
    d.mkdir(parents=True)
    (d / "10-a.conf").write_text("[Login]\nSessionsMax=3\n")
    bad = d / "50-bad.conf"
    make(bad)
    result = load_config(tmp_path)  # returns: neither blocks nor reads forever
    assert result.fatal is not None
    assert str(result.fatal) == (f"{bad}: Failed to open configuration file '{bad}': "
                                 f"not a regular file ({kind})")
    assert result.config.sessions_max == 3  # what was read before it applies, as logind does


def test_dev_null_is_still_a_mask(tmp_path: Path) -> None:
    d = tmp_path / DROPIN
    d.mkdir(parents=True)
    (d / "50-a.conf").symlink_to("/dev/null")
    result = load_config(tmp_path)
    assert result.fatal is None and result.files == (str(d / "50-a.conf"),)
