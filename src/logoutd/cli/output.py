"""Rendering results: loginctl-style tables, `--json`, timestamps, process trees."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

JSON_SCHEMA_VERSION = 1


@dataclass
class Output:
    out: TextIO
    json: bool = False
    legend: bool = True

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def emit_json(self, kind: str, data: Any) -> None:
        self.out.write(json.dumps({"schema": JSON_SCHEMA_VERSION, kind: data}, indent=2) + "\n")


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = []
    for row in [header, *rows]:
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append(" ".join(cells).rstrip())
    return "\n".join(lines)


def format_since(timestamp: float, now: float | None = None) -> str:
    now = time.time() if now is None else now
    stamp = time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(timestamp))
    return f"{stamp}; {format_ago(now - timestamp)} ago"


def format_ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}min {seconds}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}min"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def _proc_line(pid: int) -> tuple[int, str] | None:
    base = Path("/proc") / str(pid)
    try:
        stat = (base / "stat").read_bytes()
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        raw = (base / "cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    if not args:
        try:
            args = [f"[{(base / 'comm').read_text().strip()}]"]
        except OSError:
            return None
    return ppid, " ".join(f'"{a}"' if " " in a else a for a in args)


def cgroup_tree(cgroup_dir: Path, indent: str = "") -> list[str]:
    """systemd-cgls style: sub-cgroups and the processes of each, as a tree."""
    lines: list[str] = []
    try:
        pids = [int(p) for p in (cgroup_dir / "cgroup.procs").read_text().split()]
        children = sorted(e.name for e in os.scandir(cgroup_dir) if e.is_dir())
    except OSError:
        return lines
    entries: list[tuple[str, Any]] = [("pid", p) for p in sorted(pids)]
    entries += [("cg", c) for c in children]
    for index, (kind, value) in enumerate(entries):
        last = index == len(entries) - 1
        branch = "└─" if last else "├─"
        if kind == "pid":
            info = _proc_line(value)
            if info is not None:
                lines.append(f"{indent}{branch}{value} {info[1]}")
        else:
            lines.append(f"{indent}{branch}{value}")
            lines.extend(cgroup_tree(cgroup_dir / value, indent + ("  " if last else "│ ")))
    return lines
