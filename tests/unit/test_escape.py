"""cescape() and the daemon's log formatter: user text cannot drive a terminal or forge a line."""

from __future__ import annotations

import io
import logging

import pytest

from logoutd.escape import EscapingFormatter, cescape

EVIL = "\x1b]0;pwn\x07\r"


@pytest.mark.parametrize(("text", "escaped"), [
    ("pts/3", "pts/3"),
    ("héllo wörld ✓ 日本", "héllo wörld ✓ 日本"),  # text stays text
    ("back\\slash", "back\\slash"),
    (EVIL, "\\x1b]0;pwn\\a\\r"),
    ("a\nb\tc\x00d\x7fe", "a\\nb\\tc\\x00d\\x7fe"),
    ("\x9b2J", "\\x9b2J"),  # C1 CSI
    ("abc\u202edcba", "abc\\u202edcba"),  # right-to-left override
])
def test_cescape(text: str, escaped: str) -> None:
    assert cescape(text) == escaped


def test_every_c0_c1_and_del_is_escaped() -> None:
    for code in [*range(0x20), *range(0x7F, 0xA0)]:
        out = cescape(chr(code))
        assert out.startswith("\\") and out.isprintable(), (code, out)


def test_log_lines_are_escaped_tracebacks_keep_their_lines() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(EscapingFormatter("logoutd: %(levelname)s %(message)s"))
    logger = logging.getLogger("logoutd.test-escape")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("Started %s of user %s: %s.", "x.service", "alice", f"echo {EVIL}\nforged")
        try:
            raise ValueError(f"bad tty {EVIL}")
        except ValueError:
            logger.exception("Internal error")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    lines = text.splitlines()
    assert lines[0] == "logoutd: WARNING Started x.service of user alice: echo \\x1b]0;pwn\\a\\r\\nforged."
    assert lines[1] == "logoutd: ERROR Internal error" and lines[2].startswith("Traceback")
    assert lines[-1] == "ValueError: bad tty \\x1b]0;pwn\\a\\r"
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text
