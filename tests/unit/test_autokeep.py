"""AutoKeep=: which process trees are kept at logout."""

from __future__ import annotations

import signal

from logoutd.config.model import Config
from logoutd.core.autokeep import keep_trees
from logoutd.core.ports import ProcessInfo
from logoutd.core.request import SessionRequest
from tests.unit.conftest import make_core


def info(pid: int, ppid: int, exe: str) -> ProcessInfo:
    return ProcessInfo(pid=pid, ppid=ppid, uid=1000, comm=exe.rsplit("/", 1)[-1], cmdline=exe, exe=exe)


def test_keep_trees_takes_the_listed_process_and_its_children() -> None:
    infos = [
        info(10, 1, "/usr/bin/bash"),
        info(20, 1, "/usr/bin/tmux"),  # the server, daemonized
        info(21, 20, "/usr/bin/bash"),  # a pane
        info(22, 21, "/usr/bin/vim"),
        info(23, 21, "/usr/bin/tmux"),  # a client inside the pane: part of the outer tree
        info(30, 10, "/usr/bin/screen (deleted)"),  # upgraded under it
        info(40, 10, "/usr/bin/sleep"),
    ]
    trees = keep_trees(infos, ("/usr/bin/tmux", "/usr/bin/screen"))
    assert trees == {20: [20, 21, 22, 23], 30: [30]}
    assert keep_trees(infos, ()) == {}


def test_autokeep_moves_trees_out_of_a_dying_session() -> None:
    core = make_core(Config(auto_keep=("/usr/bin/sleep",)))
    leader = core.world.spawn(uid=0)
    session = core.manager.create_session(SessionRequest(uid=1000, leader=leader.pid))
    kept = core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGHUP])
    core.world.exit(leader.pid)
    assert kept.alive
    assert kept.cgroup.endswith(f"user@1000.service/app.slice/autokeep-{kept.pid}.scope")
    grant = core.audit.events("keep")[-1]
    assert grant["granted"] is True and grant["pids"] == [kept.pid] and "AutoKeep=" in grant["rule"]
    assert session.id not in core.manager.sessions
    [unit] = core.manager.units.all()  # a unit like any other: listed, stoppable, dies with the user
    assert unit.name == f"autokeep-{kept.pid}.scope" and unit.user.uid == 1000


def test_autokeep_denied_by_policy_kills() -> None:
    core = make_core(Config(auto_keep=("/usr/bin/sleep",), keep_allow_users=("bob",)))
    leader = core.world.spawn(uid=0)
    core.manager.create_session(SessionRequest(uid=1000, leader=leader.pid))
    victim = core.world.spawn(cgroup=leader.cgroup)
    core.world.exit(leader.pid)
    assert not victim.alive
    denied = core.audit.events("keep")[-1]
    assert denied["granted"] is False and "KeepAllowUsers=bob" in denied["rule"]


def test_terminate_ignores_autokeep() -> None:
    core = make_core(Config(auto_keep=("/usr/bin/sleep",)))
    leader = core.world.spawn(uid=0)
    session = core.manager.create_session(SessionRequest(uid=1000, leader=leader.pid))
    victim = core.world.spawn(cgroup=leader.cgroup)
    core.manager.terminate_session(session)
    assert not victim.alive
