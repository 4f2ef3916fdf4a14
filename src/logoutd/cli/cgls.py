"""A cgroup subtree with its processes and their command lines, drawn as `systemd-cgls` draws it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from logoutd.cli.output import GREY, Output, shown

BRANCH, RIGHT, VERTICAL, SPACE = "├─", "└─", "│ ", "  "
EXTRA = "‣ "  # systemd's triangular bullet: a process shown although it is outside the cgroup
PREFIX = "\t\t  "  # loginctl's indent of the tree below "Unit:" (18 columns)
PREFIX_COLUMNS = 18


@dataclass(frozen=True)
class Process:
    pid: int
    cmdline: str
    cgroup: str  # relative to the managed cgroup root, as a session's "scope"

    def to_json(self) -> dict[str, object]:
        return {"pid": self.pid, "cmdline": self.cmdline, "cgroup": self.cgroup}


def cmdline(pid: int) -> str | None:
    """The command line, shell-quoted as systemd shows it; "[comm]" without one (kernel threads)."""
    base = Path("/proc") / str(pid)
    try:
        raw = (base / "cmdline").read_bytes()
        if not raw:
            return f"[{(base / 'comm').read_text().strip()}]"
    except OSError:
        return None
    words = [w.decode(errors="replace") for w in raw.rstrip(b"\0").split(b"\0")]
    return " ".join(_quote(w) for w in words)


_NEEDS_QUOTES = frozenset("\"\\`$*?['()<>|&;! \t\n\r")


def _quote(word: str) -> str:
    """shell_escape() as PID 1 applies it to GetUnitProcesses' command lines."""
    if word and not any(c in _NEEDS_QUOTES or not c.isprintable() for c in word):
        return word
    out = []
    for c in word:
        if c in "\"\\`$":
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif not c.isprintable():
            out.append(f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def comm(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def _pids(directory: Path) -> list[int]:
    try:
        return sorted({int(p) for p in (directory / "cgroup.procs").read_text().split()})
    except (OSError, ValueError):
        return []


def _children(directory: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(directory) if e.is_dir(follow_symlinks=False))
    except OSError:
        return []


def _populated(directory: Path) -> bool:
    try:
        return "populated 1" in (directory / "cgroup.events").read_text()
    except OSError:
        return bool(_pids(directory))


def processes(root: Path, path: str) -> list[Process]:
    """Every process in the subtree `path` of the managed root, depth first, pids ascending."""
    found: list[Process] = []
    for pid in _pids(root / path):
        line = cmdline(pid)
        if line is not None:
            found.append(Process(pid, line, path))
    for child in _children(root / path):
        found.extend(processes(root, f"{path}/{child}"))
    return found


def tree(output: Output, root: Path, path: str, *, show_all: bool = False,
         extra: tuple[int, ...] = ()) -> list[str]:
    """The lines under "Unit:"; `extra` pids outside the subtree are listed after it (‣)."""
    width = output.width - PREFIX_COLUMNS if output.width is not None else None
    lines = _tree(output, root / path, PREFIX, width, show_all)
    inside = set(_all_pids(root / path))
    outside = [pid for pid in extra if pid not in inside and cmdline(pid) is not None]
    lines += _pid_lines(output, outside, PREFIX, width, more=False, glyph=EXTRA)
    return lines


def _all_pids(directory: Path) -> list[int]:
    pids = _pids(directory)
    for child in _children(directory):
        pids += _all_pids(directory / child)
    return pids


def _tree(output: Output, directory: Path, prefix: str, width: int | None,
          show_all: bool) -> list[str]:
    children = [c for c in _children(directory) if show_all or _populated(directory / c)]
    lines = _pid_lines(output, _pids(directory), prefix, width, more=bool(children))
    for index, child in enumerate(children):
        last = index == len(children) - 1
        lines.append(f"{prefix}{RIGHT if last else BRANCH}{shown(child)}")
        sub_width = width - 2 if width is not None else None
        lines += _tree(output, directory / child, prefix + (SPACE if last else VERTICAL),
                       sub_width, show_all)
    return lines


def _pid_lines(output: Output, pids: list[int], prefix: str, width: int | None, *,
               more: bool, glyph: str | None = None) -> list[str]:
    shown = [(pid, line) for pid in pids if (line := cmdline(pid)) is not None]
    if not shown:
        return []
    pid_width = len(str(max(pid for pid, _ in shown)))
    room = None
    if width is not None:
        room = width - pid_width - 3 if width > pid_width + 3 else 20
    lines = []
    for index, (pid, line) in enumerate(shown):
        last = not more and index == len(shown) - 1
        glyph_here = glyph or (RIGHT if last else BRANCH)
        if room is not None and len(line) > room:
            line = line[: max(room - 1, 0)] + "…"
        lines.append(prefix + glyph_here + output.paint(GREY, f"{pid:>{pid_width}} {line}"))
    return lines
