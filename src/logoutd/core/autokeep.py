"""AutoKeep=: at logout, processes running listed executables (with their children) are moved
to a scope of the user's own instead of being killed — tmux and screen without new habits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from logoutd.core.ports import ProcessInfo


def keep_trees(infos: Iterable[ProcessInfo], auto_keep: Sequence[str]) -> dict[int, list[int]]:
    """root pid -> the pids of its tree (root first), for each process whose exe is listed.

    Only processes of the scope are considered; a listed process under another listed one
    (a tmux client started inside tmux) belongs to the outer tree.
    """
    by_pid = {info.pid: info for info in infos}
    children: dict[int, list[int]] = {}
    for info in by_pid.values():
        children.setdefault(info.ppid, []).append(info.pid)
    listed = {info.pid for info in by_pid.values() if _matches(info, auto_keep)}
    trees: dict[int, list[int]] = {}
    for pid in sorted(listed):
        if _has_listed_ancestor(pid, by_pid, listed):
            continue
        tree, todo = [], [pid]
        while todo:
            current = todo.pop()
            tree.append(current)
            todo.extend(sorted(children.get(current, ()), reverse=True))
        trees[pid] = tree
    return trees


def _matches(info: ProcessInfo, auto_keep: Sequence[str]) -> bool:
    # A running binary replaced by an upgrade shows as "/usr/bin/tmux (deleted)".
    return info.exe.removesuffix(" (deleted)") in auto_keep


def _has_listed_ancestor(pid: int, by_pid: dict[int, ProcessInfo], listed: set[int]) -> bool:
    seen = set()
    parent = by_pid[pid].ppid
    while parent in by_pid and parent not in seen:
        if parent in listed:
            return True
        seen.add(parent)
        parent = by_pid[parent].ppid
    return False
