"""The user around its sessions: runtime dir and slice exist while a session does, and go with
the last one (UserStopDelaySec=0 in the harness); the session cannot leave its scope."""

from __future__ import annotations

import stat

from tests.integration.harness.checks import assert_in_scope, wait_gone, wait_session_removed
from tests.integration.harness.login import script
from tests.integration.harness.procs import wait_for


def test_runtime_dir_and_slice_follow_sessions(env, user, pam, daemon):
    first = env.login("su", pam, user, script("nohup"))
    procs = first.wait_ready()
    env.track(procs.values())
    s1 = daemon.wait_session(user.name)
    second = env.login("ssh", pam, user, script("nohup"))
    procs2 = second.wait_ready()
    env.track(procs2.values())
    daemon.wait_for(lambda: len(daemon.sessions(user.name)) == 2, 10, "two sessions")

    u = daemon.call("get_user", uid=user.uid)["user"]
    assert u["name"] == user.name and u["gid"] == user.gid, u
    assert len(u["sessions"]) == 2 and s1["id"] in u["sessions"], u
    runtime = daemon.user_runtime_root / str(user.uid)
    assert u["runtime_path"] == str(runtime), u
    st = runtime.stat()
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == user.uid, oct(st.st_mode)
    user_slice = env.cgroup_root / "user.slice" / f"user-{user.uid}.slice"
    assert user_slice.is_dir()

    # Logging out of one session leaves the user (and the other session) alone.
    assert first.logout() == 0, first.report()
    wait_gone(env, procs.values(), 10)
    wait_session_removed(env, daemon, s1)
    assert runtime.is_dir() and user_slice.is_dir()
    s2 = daemon.wait_session(user.name)
    assert_in_scope(env, s2, procs2.values())

    # The last logout stops the user: runtime dir and slice are removed.
    assert second.logout() == 0, second.report()
    wait_gone(env, procs2.values(), 10)
    wait_session_removed(env, daemon, s2)
    wait_for(lambda: not runtime.exists() and not user_slice.exists(), 10,
             "runtime dir and user slice to be removed", details=env.describe)
    daemon.wait_for(lambda: all(x["uid"] != user.uid for x in daemon.users()), 10,
                    "the user to be dropped")


def test_session_cannot_leave_its_scope(env, user, pam, daemon):
    """The user may not move a process out of the scope nor create cgroups in the tree."""
    attempts = " ; ".join(
        f'(echo $$ > {target}/cgroup.procs) 2>/dev/null && echo "ESCAPED {target}"'
        for target in (env.mount, env.cgroup_root, env.cgroup_root / "user.slice")
    ) + f' ; mkdir {env.cgroup_root}/user.slice/x 2>/dev/null && echo "ESCAPED mkdir"'
    login = env.login("ssh", pam, user, script("nohup", extra=attempts + '; echo "PID shell $$"'))
    procs = login.wait_ready()
    env.track(procs.values())
    assert "ESCAPED" not in login.output(), login.report()
    session = daemon.wait_session(user.name)
    assert_in_scope(env, session, procs.values())
    assert login.logout() == 0
    wait_gone(env, procs.values(), 10)
    wait_session_removed(env, daemon, session)


def test_a_user_made_tree_in_the_runtime_dir_is_removed_without_following_links(
        env, user, pam, daemon):
    """Issue 11: the runtime dir of a stopped user goes at once (renamed aside, removed by a
    child); links in it are removed, never followed; the daemon keeps answering."""
    precious = env.tmp / "precious"
    precious.mkdir()
    (precious / "file").write_text("keep me")
    precious.chmod(0o755)
    runtime = daemon.user_runtime_root / str(user.uid)
    tree = (f'R={runtime}; mkdir -p $R/$(printf "d/%.0s" $(seq 60)); '
            f'for i in $(seq 3000); do : > $R/f$i; done; ln -s {precious} $R/link; '
            f'ln -s {precious} $R/d/d/link; mkfifo $R/fifo; echo "PID shell $$"')
    login = env.login("su", pam, user, script(extra=tree))
    procs = login.wait_ready()
    env.track(procs.values())
    session = daemon.wait_session(user.name)
    assert (runtime / "f3000").exists() and (runtime / "link").is_symlink()
    assert login.logout() == 0, login.report()
    wait_session_removed(env, daemon, session)
    wait_for(lambda: not runtime.exists(), 10, "the runtime dir to be removed",
             details=env.describe)
    wait_for(lambda: not [p for p in daemon.user_runtime_root.iterdir()
                          if p.name.startswith(".removing-")], 10, "the aside copy to be removed")
    assert (precious / "file").read_text() == "keep me"
    assert daemon.call("status") and "Traceback" not in daemon.log()
