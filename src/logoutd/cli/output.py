"""Rendering results: loginctl-style tables, `--json`, colour, timestamps as systemd prints them."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from logoutd.escape import cescape

JSON_SCHEMA_VERSION = 1

# systemd's ansi_*() sequences (terminal-util.h).
GREY = "\x1b[0;38;5;245m"
UNDERLINE = "\x1b[0;4m"
HIGHLIGHT_RED = "\x1b[0;1;31m"
NORMAL = "\x1b[0m"


def wants_colour(out: TextIO, env: Mapping[str, str]) -> bool:
    """Colour only on a terminal, never with NO_COLOR (https://no-color.org) or TERM=dumb."""
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def terminal_width(out: TextIO, env: Mapping[str, str]) -> int | None:
    """Columns to ellipsize to: $COLUMNS, else the terminal's, else 80; None: not a terminal."""
    try:
        if not out.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    columns = env.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        columns_of_tty = os.get_terminal_size(out.fileno()).columns
    except (OSError, ValueError):
        return 80
    # A pty nobody sized (ssh -T, script, some CI) says 0 columns: unknown, as systemd's
    # columns() takes it, not a width to cut trees to.
    return columns_of_tty if columns_of_tty > 0 else 80


@dataclass
class Output:
    out: TextIO
    json: bool = False
    legend: bool = True
    colour: bool = False
    width: int | None = None  # ellipsize process trees to this many columns; None: full width
    err: TextIO | None = None

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def warn(self, text: str) -> None:
        if self.err is not None:
            self.err.write(cescape(text) + "\n")

    def emit_json(self, kind: str, data: Any) -> None:
        """One JSON document: {"schema": N, kind: data} (docs/logoutctl.md, "JSON output")."""
        document = {"schema": JSON_SCHEMA_VERSION, kind: data}
        self.out.write(json.dumps(document, indent=2) + "\n")

    def paint(self, sequence: str, text: str) -> str:
        return f"{sequence}{text}{NORMAL}" if self.colour and text else text

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]],
              right: Sequence[int] = ()) -> None:
        """A table as systemd's format-table prints it; --no-legend drops the header."""
        lines = table(header, rows, right)
        if self.legend:
            self.print(self.paint(UNDERLINE, lines[0]))
        for line in lines[1:]:
            self.print(line)

    def show_table(self, header: Sequence[str], rows: Sequence[Sequence[str]],
                   right: Sequence[int], word: str) -> None:
        """loginctl's show_table(): no table when empty; "N sessions listed." or "No sessions."."""
        if rows:
            self.table(header, rows, right)
        if self.legend:
            self.print(f"\n{len(rows)} {word} listed." if rows else f"No {word}.")


def shown(text: str) -> str:
    """A value from the daemon or /proc as a terminal may see it: control characters escaped
    (tty, rhost, cmdline, comm are whatever a user made them). Every human output uses it."""
    return cescape(text)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> list[str]:
    """Cells are escaped with shown(); widths count the escaped text."""
    rows = [[shown(c) for c in row] for row in rows]
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = []
    for row in [header, *rows]:
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append(" ".join(cells).rstrip())
    return lines


def format_timestamp(timestamp: float) -> str:
    """format_timestamp(): "Tue 2024-05-14 10:00:00 UTC"."""
    return time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(timestamp))


def format_since(timestamp: float, now: float | None = None) -> str:
    """loginctl's "Since:" value: the timestamp, then how long ago."""
    return f"{format_timestamp(timestamp)}; {format_relative(timestamp, now)}"


_USEC = 1_000_000
_MINUTE, _HOUR, _DAY = 60 * _USEC, 3600 * _USEC, 86400 * _USEC
_WEEK, _MONTH, _YEAR = 7 * _DAY, 2_629_800 * _USEC, 31_557_600 * _USEC


def format_relative(timestamp: float, now: float | None = None) -> str:
    """format_timestamp_relative() of systemd v252: "5min 38s ago", "1 day 2h ago", "now"."""
    now = time.time() if now is None else now
    delta = round((now - timestamp) * _USEC)
    suffix = "ago" if delta >= 0 else "left"
    d = abs(delta)
    if d >= _YEAR:
        return f"{d // _YEAR} years {(d % _YEAR) // _MONTH} months {suffix}"
    if d >= _MONTH:
        return f"{d // _MONTH} months {(d % _MONTH) // _DAY} days {suffix}"
    if d >= _WEEK:
        return f"{d // _WEEK} weeks {(d % _WEEK) // _DAY} days {suffix}"
    if d >= 2 * _DAY:
        return f"{d // _DAY} days {suffix}"
    if d >= 25 * _HOUR:
        return f"1 day {(d - _DAY) // _HOUR}h {suffix}"
    if d >= 6 * _HOUR:
        return f"{d // _HOUR}h {suffix}"
    if d >= _HOUR:
        return f"{d // _HOUR}h {(d % _HOUR) // _MINUTE}min {suffix}"
    if d >= 5 * _MINUTE:
        return f"{d // _MINUTE}min {suffix}"
    if d >= _MINUTE:
        return f"{d // _MINUTE}min {(d % _MINUTE) // _USEC}s {suffix}"
    if d >= _USEC:
        return f"{d // _USEC}s {suffix}"
    if d >= 1000:
        return f"{d // 1000}ms {suffix}"
    if d > 0:
        return f"{d}us {suffix}"
    return "now"
