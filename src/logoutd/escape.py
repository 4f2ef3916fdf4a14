"""Text from users (PAM items, command lines, comm) made harmless for a terminal or a log line.

A tty or rhost is whatever the PAM client passed; a command line or comm is whatever the
process set. Printed raw, ESC, CR, BEL and friends let them retitle a terminal, rewrite the
line they are on, or forge a log line. JSON output escapes them already; these are for the
human outputs.
"""

from __future__ import annotations

import logging
import re

# C0 controls and DEL, C1 controls (U+0080-U+009F: U+009B is a CSI to some terminals), and the
# bidirectional overrides and isolates that reorder what follows ("Trojan Source").
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f",
          "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    c = match.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def cescape(text: str) -> str:
    """Control characters as C escapes (systemd's cescape() spirit: ESC is shown as \\x1b,
    CR as \\r); everything else, including non-ASCII text and backslashes, unchanged."""
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


class EscapingFormatter(logging.Formatter):
    """Every log line escaped: messages with user text cannot forge lines or drive a terminal.
    Tracebacks keep their line breaks; each of their lines is escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return cescape(super().formatMessage(record))

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        return _lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _lines(super().formatStack(stack_info))


def _lines(text: str) -> str:
    return "\n".join(cescape(line) for line in text.split("\n"))
