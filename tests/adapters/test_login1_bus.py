"""The login1 adapter on a real private dbus-daemon, over a core on fakes.

What pam_systemd and loginctl rely on, checked message by message: exact property types,
GetAll(""), logind's error names, signature checks, the reference FIFO's fd in the reply and
its hang-up, signals, refusing to start beside another owner of the name. The real daemon,
real logins and stock loginctl are in tests/integration/test_login1*.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

dbus_fast = pytest.importorskip("dbus_fast")
from dbus_fast import Message, MessageType, Variant  # noqa: E402
from dbus_fast.aio import MessageBus  # noqa: E402

from logoutd.api.service import DaemonInfo, Service  # noqa: E402
from logoutd.errors import LogoutdError  # noqa: E402
from logoutd.login1 import objects  # noqa: E402
from logoutd.login1.bus import NAME, Login1  # noqa: E402
from logoutd.login1.labels import ROOT, session_path, user_path  # noqa: E402
from tests.fakes import FakeProcess  # noqa: E402
from tests.integration.harness.bus import config_text  # noqa: E402
from tests.unit.conftest import ALICE, Core, make_core  # noqa: E402

DBUS_DAEMON = shutil.which("dbus-daemon")
pytestmark = pytest.mark.skipif(DBUS_DAEMON is None, reason="dbus-daemon not installed")

class PrivateBus:
    """A private bus of type system with the stock system policy; nothing else on it (no
    activation). The adapter and its clients here run as root, as pam_systemd does."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="logoutd-test-bus-"))
        self.socket = self.tmp / "bus.sock"
        self.config = self.tmp / "bus.conf"
        self.config.write_text(config_text(self.socket))
        self.address = f"unix:path={self.socket}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(DBUS_DAEMON), "--nofork", f"--config-file={self.config}", "--print-address"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().startswith(b"unix:"), "dbus-daemon did not start"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(5)
            self.proc = None
        self.socket.unlink(missing_ok=True)


@pytest.fixture
def private_bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateBus]:
    bus = PrivateBus()
    try:
        bus.start()
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address)
        yield bus
    finally:
        bus.stop()
        shutil.rmtree(bus.tmp, ignore_errors=True)


@pytest.fixture
def bus_address(private_bus: PrivateBus) -> str:
    return private_bus.address


class Peer:
    """A client connection plus the adapter under test, both on one loop."""

    def __init__(self, core: Core, login1: Login1, client: MessageBus) -> None:
        self.core = core
        self.login1 = login1
        self.client = client
        self.signals: list[Message] = []

    async def call(self, path: str, interface: str, member: str, signature: str = "",
                   body: list[Any] | None = None) -> Message:
        return await self.client.call(Message(destination=NAME, path=path, interface=interface,
                                              member=member, signature=signature,
                                              body=body or []))

    async def manager(self, member: str, signature: str = "", *body: Any) -> Message:
        return await self.call(ROOT, objects.MANAGER_IFACE, member, signature,
                               list(body))

    async def get_all(self, path: str, interface: str = "") -> dict[str, Variant]:
        reply = await self.call(path, "org.freedesktop.DBus.Properties", "GetAll", "s",
                                [interface])
        assert reply.message_type is MessageType.METHOD_RETURN, reply.body
        result: dict[str, Variant] = reply.body[0]
        return result


def run(test: Callable[[Peer], Awaitable[None]], core: Core | None = None) -> None:
    asyncio.run(_run(test, core or make_core()))


async def _run(test: Callable[[Peer], Awaitable[None]], core: Core) -> None:
    async with _served(core) as peer:
        await test(peer)


class _served:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.fifo_dir = Path(tempfile.mkdtemp(prefix="logoutd-test-fifo-"))

    async def __aenter__(self) -> Peer:
        info = DaemonInfo(reload=lambda: {}, config_files=lambda: [], cgroup_root="/x")
        self.login1 = Login1(Service(self.core.manager, info), self.fifo_dir)
        await self.login1.start()
        self.client = await MessageBus(bus_type=dbus_fast.BusType.SYSTEM,
                                       negotiate_unix_fd=True).connect()
        peer = Peer(self.core, self.login1, self.client)
        self.client.add_message_handler(
            lambda m: peer.signals.append(m) if m.message_type is MessageType.SIGNAL
            and m.interface == objects.MANAGER_IFACE else None)
        await self.client.call(Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus", member="AddMatch", signature="s",
            body=[f"type='signal',sender='{NAME}'"]))
        return peer

    async def __aexit__(self, *exc: object) -> None:
        self.client.disconnect()
        await self.login1.close()
        shutil.rmtree(self.fifo_dir, ignore_errors=True)


async def _until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def _create_args(uid: int, leader: int, service: str = "sshd") -> list[Any]:
    return [uid, leader, service, "tty", "user", "", "", 0, "", "", True, "", "10.0.0.9", []]


CREATE_SIG = "uusssssussbssa(sv)"


# -- the tests ------------------------------------------------------------------------------------

def test_create_session_replies_like_logind_and_the_fifo_hangup_stops_it(bus_address: str) -> None:
    async def test(peer: Peer) -> None:
        leader = peer.core.world.spawn(uid=ALICE.uid, sessionid=7)
        reply = await peer.manager("CreateSession", CREATE_SIG,
                                   *_create_args(ALICE.uid, leader.pid))
        assert reply.message_type is MessageType.METHOD_RETURN, reply.body
        assert reply.signature == "soshusub"
        sid, path, runtime, fd_index, uid, seat, vtnr, existing = reply.body
        assert (sid, path, uid, seat, vtnr, existing) == ("7", "/org/freedesktop/login1/session/_37",
                                                          ALICE.uid, "", 0, False)
        assert runtime == peer.core.manager.users[ALICE.uid].runtime_path
        assert fd_index == 0 and len(reply.unix_fds) == 1
        session = peer.core.manager.sessions["7"]
        assert session.state == "active"
        await _until(lambda: any(m.member == "SessionNew" for m in peer.signals))
        new = next(m for m in peer.signals if m.member == "SessionNew")
        assert new.body == ["7", path]
        assert any(m.member == "UserNew" and m.body == [ALICE.uid, user_path(ALICE.uid)]
                   for m in peer.signals)
        fifo = peer.login1.fifo_dir / "7.ref"
        assert fifo.exists() and peer.login1.fifos is not None
        assert peer.login1.fifos.watched() == ["7"]
        os.write(reply.unix_fds[0], b"x")  # writing means nothing
        await asyncio.sleep(0.05)
        assert session.stop_cause is None
        os.close(reply.unix_fds[0])  # the PAM process exits: the last writer is gone
        await _until(lambda: session.stop_cause is not None)
        assert str(session.stop_cause) == "reference-closed"
        assert not fifo.exists()

    run(test)


def test_create_session_for_a_leader_already_in_a_session_is_busy(bus_address: str) -> None:
    async def test(peer: Peer) -> None:
        leader = peer.core.world.spawn(uid=ALICE.uid)
        first = await peer.manager("CreateSession", CREATE_SIG, *_create_args(ALICE.uid, leader.pid))
        assert first.message_type is MessageType.METHOD_RETURN
        again = await peer.manager("CreateSession", CREATE_SIG, *_create_args(ALICE.uid, leader.pid))
        assert again.message_type is MessageType.ERROR
        assert again.error_name == "org.freedesktop.login1.SessionBusy"
        assert len(peer.core.manager.sessions) == 1
        for fd in first.unix_fds:
            os.close(fd)

    run(test)


def test_create_session_for_a_dead_leader_creates_nothing(bus_address: str) -> None:
    async def test(peer: Peer) -> None:
        leader = peer.core.world.spawn(uid=ALICE.uid)
        peer.core.world.exit(leader.pid)
        reply = await peer.manager("CreateSession", CREATE_SIG, *_create_args(ALICE.uid, leader.pid))
        assert reply.message_type is MessageType.ERROR
        assert reply.error_name == "org.freedesktop.systemd1.NoSuchProcess"
        assert peer.core.manager.sessions == {}
        assert list(peer.login1.fifo_dir.glob("*.ref")) == []

    run(test)


PIDFD_SIG = "uhsssssussbssta(sv)"


def _pidfd_args(uid: int, flags: int = 0) -> list[Any]:
    """CreateSessionWithPIDFD's arguments as pam_systemd 255 sends them: the pidfd at index 0."""
    return [uid, 0, "sshd", "tty", "user", "", "", 0, "", "", True, "", "10.0.0.9", flags, []]


class RealLeader:
    """A real process (so a real pidfd) that the fake world knows by the same pid."""

    def __init__(self, core: Core, uid: int) -> None:
        self.proc = subprocess.Popen(["sleep", "60"])
        self.fake = FakeProcess(self.proc.pid, uid, core.world.root_in_mount)
        core.world.procs[self.proc.pid] = self.fake
        self.pidfd = os.pidfd_open(self.proc.pid)

    def end(self) -> None:
        self.proc.kill()
        self.proc.wait(5)

    def close(self) -> None:
        self.end()
        os.close(self.pidfd)


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def _pidfd_call(peer: Peer, args: list[Any], fds: list[int]) -> Message:
    return await peer.client.call(Message(
        destination=NAME, path=ROOT, interface=objects.MANAGER_IFACE,
        member="CreateSessionWithPIDFD", signature=PIDFD_SIG, body=args, unix_fds=fds))


def test_create_session_with_pidfd_takes_the_pidfds_process_as_leader(bus_address: str) -> None:
    """logind 255's method: the leader is the pidfd's process (not the caller), the reply is
    CreateSession's, and the pidfd logoutd received is closed once answered."""
    async def test(peer: Peer) -> None:
        leader = RealLeader(peer.core, ALICE.uid)
        try:
            before = _open_fds()
            reply = await _pidfd_call(peer, _pidfd_args(ALICE.uid), [leader.pidfd])
            assert reply.message_type is MessageType.METHOD_RETURN, reply.body
            assert reply.signature == "soshusub" and len(reply.unix_fds) == 1
            sid = reply.body[0]
            session = peer.core.manager.sessions[sid]
            assert session.leader.pid == leader.proc.pid != os.getpid()
            assert (session.service, session.remote_host) == ("sshd", "10.0.0.9")
            os.close(reply.unix_fds[0])
            await _until(lambda: _open_fds() <= before)  # the received pidfd is closed too
        finally:
            leader.close()

    run(test)


@pytest.mark.parametrize(("case", "flags", "error", "text"), [
    ("flags", 1, "org.freedesktop.DBus.Error.InvalidArgs", "Flags must be zero"),
    ("dead", 0, "org.freedesktop.DBus.Error.InvalidArgs", "has exited"),
    ("pipe", 0, "org.freedesktop.DBus.Error.InvalidArgs", "not a pidfd"),
    ("logoutd itself", 0, "org.freedesktop.DBus.Error.InvalidArgs", "Invalid leader PID"),
])
def test_create_session_with_pidfd_refuses_bad_flags_and_fds(bus_address: str, case: str,
                                                             flags: int, error: str,
                                                             text: str) -> None:
    async def test(peer: Peer) -> None:
        leader = RealLeader(peer.core, ALICE.uid)
        r, w = os.pipe()
        own = os.pidfd_open(os.getpid())  # the adapter runs in this process here
        try:
            if case == "dead":
                leader.end()  # exited and reaped: the pidfd stays, its process is gone
            fd = {"pipe": r, "logoutd itself": own}.get(case, leader.pidfd)
            before = _open_fds()
            reply = await _pidfd_call(peer, _pidfd_args(ALICE.uid, flags), [fd])
            assert reply.message_type is MessageType.ERROR, reply.body
            assert reply.error_name == error and text in reply.body[0], reply.body
            assert peer.core.manager.sessions == {} and peer.core.manager.users == {}
            assert list(peer.login1.fifo_dir.glob("*.ref")) == []
            await _until(lambda: _open_fds() <= before)
        finally:
            leader.close()
            for fd in (r, w, own):
                os.close(fd)

    run(test)


def test_fds_sent_to_anything_but_a_login1_method_are_closed(bus_address: str) -> None:
    """dbus-fast keeps the fds of every message it receives: the adapter closes them, whether
    the call was ours (any method, even one that takes no fd) or not."""
    async def test(peer: Peer) -> None:
        r, w = os.pipe()
        try:
            before = _open_fds()
            reply = await peer.client.call(Message(
                destination=NAME, path=ROOT, interface=objects.MANAGER_IFACE,
                member="ListSessions", unix_fds=[r]))
            assert reply.message_type is MessageType.METHOD_RETURN, reply.body
            other = await peer.client.call(Message(
                destination=NAME, path="/org/example", interface="org.example.X",
                member="Y", unix_fds=[w]))
            assert other.message_type is MessageType.ERROR
            await _until(lambda: _open_fds() <= before)
        finally:
            os.close(r)
            os.close(w)

    run(test)


def test_properties_have_logind_types_and_getall_accepts_the_empty_interface(
        bus_address: str) -> None:
    async def test(peer: Peer) -> None:
        leader = peer.core.world.spawn(uid=ALICE.uid, sessionid=12)
        reply = await peer.manager("CreateSession", CREATE_SIG, *_create_args(ALICE.uid, leader.pid))
        session = await peer.get_all(session_path("12"))
        assert {k: v.signature for k, v in session.items()} == {
            p.name: p.type for p in objects.SESSION.properties}
        assert session["Id"].value == "12"
        assert list(session["User"].value) == [ALICE.uid, "/org/freedesktop/login1/user/_31000"]
        assert session["Leader"].value == leader.pid
        assert session["Audit"].value == 12
        assert session["Remote"].value is True and session["RemoteHost"].value == "10.0.0.9"
        assert list(session["Seat"].value) == ["", "/"]
        assert session["Scope"].value == "session-12.scope"
        assert session["State"].value == "active" and session["Active"].value is True
        assert session["Type"].value == "tty" and session["Class"].value == "user"
        named = await peer.get_all(session_path("12"), objects.SESSION_IFACE)
        assert named.keys() == session.keys()
        user = await peer.get_all(user_path(ALICE.uid))
        assert {k: v.signature for k, v in user.items()} == {
            p.name: p.type for p in objects.USER.properties}
        assert user["Name"].value == "alice" and user["Slice"].value == "user-1000.slice"
        assert [list(x) for x in user["Sessions"].value] == [["12", session_path("12")]]
        assert list(user["Display"].value) == ["12", session_path("12")]
        manager = await peer.get_all("/org/freedesktop/login1")
        assert manager["KillUserProcesses"].value is True
        assert manager["KillExcludeUsers"].value == ["root"]
        assert manager["NCurrentSessions"].value == 1
        one = await peer.call(session_path("12"), "org.freedesktop.DBus.Properties", "Get", "ss",
                              ["", "TTY"])
        assert one.body[0].signature == "s"
        os.close(reply.unix_fds[0])

    run(test)


@pytest.mark.parametrize(("path", "interface", "member", "signature", "body", "error"), [
    ("/org/freedesktop/login1", objects.MANAGER_IFACE, "GetSession", "s", ["nope"],
     "org.freedesktop.login1.NoSuchSession"),
    ("/org/freedesktop/login1", objects.MANAGER_IFACE, "GetUser", "u", [4242],
     "org.freedesktop.login1.NoSuchUser"),
    ("/org/freedesktop/login1", objects.MANAGER_IFACE, "GetSessionByPID", "u", [999999],
     "org.freedesktop.login1.NoSessionForPID"),
    ("/org/freedesktop/login1", objects.MANAGER_IFACE, "GetSession", "u", [5],
     "org.freedesktop.DBus.Error.InvalidArgs"),
    ("/org/freedesktop/login1", objects.MANAGER_IFACE, "Reboot", "b", [False],
     "org.freedesktop.DBus.Error.UnknownMethod"),
    ("/org/freedesktop/login1/session/_39", objects.SESSION_IFACE, "Terminate", "", [],
     "org.freedesktop.DBus.Error.UnknownObject"),
    ("/org/freedesktop/login1/session/bad_zz", "org.freedesktop.DBus.Properties", "GetAll",
     "s", [""], "org.freedesktop.DBus.Error.UnknownObject"),
    ("/org/freedesktop/login1/user/_31000", "org.freedesktop.DBus.Properties", "GetAll", "s",
     [""], "org.freedesktop.DBus.Error.UnknownObject"),
    ("/org/freedesktop/login1", "org.freedesktop.DBus.Properties", "Get", "ss",
     [objects.MANAGER_IFACE, "NoSuchThing"], "org.freedesktop.DBus.Error.UnknownProperty"),
    ("/org/freedesktop/login1", "org.freedesktop.DBus.Properties", "GetAll", "s",
     ["org.example.Nope"], "org.freedesktop.DBus.Error.UnknownInterface"),
    ("/org/freedesktop/login1", "org.freedesktop.DBus.Properties", "Set", "ssv",
     [objects.MANAGER_IFACE, "KillUserProcesses", Variant("b", False)],
     "org.freedesktop.DBus.Error.PropertyReadOnly"),
    ("/org/freedesktop/login1", objects.MANAGER_IFACE, "KillSession", "ssi", ["nope", "all", 15],
     "org.freedesktop.login1.NoSuchSession"),
])
def test_errors_have_logind_names_and_change_nothing(bus_address: str, path: str,
                                                     interface: str, member: str,
                                                     signature: str, body: list[Any],
                                                     error: str) -> None:
    async def test(peer: Peer) -> None:
        reply = await peer.call(path, interface, member, signature, body)
        assert reply.message_type is MessageType.ERROR, reply.body
        assert reply.error_name == error, reply.body
        assert peer.core.manager.sessions == {} and peer.core.manager.users == {}
        assert peer.core.manager.config.kill_user_processes == "yes"

    run(test)


def test_list_calls_and_session_methods(bus_address: str) -> None:
    async def test(peer: Peer) -> None:
        child = peer.core.world.spawn(uid=ALICE.uid)
        leader2 = peer.core.world.spawn(uid=ALICE.uid, sessionid=4)
        reply = await peer.manager("CreateSession", CREATE_SIG, *_create_args(ALICE.uid, leader2.pid))
        fd = reply.unix_fds[0]
        child.cgroup = peer.core.world.abs("user.slice/user-1000.slice/session-4.scope")
        sessions = await peer.manager("ListSessions")
        assert sessions.signature == "a(susso)"
        assert [list(x) for x in sessions.body[0]] == [["4", ALICE.uid, "alice", "", session_path("4")]]
        users = await peer.manager("ListUsers")
        assert [list(x) for x in users.body[0]] == [[ALICE.uid, "alice", user_path(ALICE.uid)]]
        seats = await peer.manager("ListSeats")
        assert seats.body[0] == []
        by_pid = await peer.manager("GetSessionByPID", "u", child.pid)
        assert by_pid.body == [session_path("4")]
        user_by_pid = await peer.manager("GetUserByPID", "u", child.pid)
        assert user_by_pid.body == [user_path(ALICE.uid)]
        killed = await peer.call(session_path("4"), objects.SESSION_IFACE, "Kill", "si",
                                 ["all", signal.SIGUSR1])
        assert killed.message_type is MessageType.METHOD_RETURN, killed.body
        assert signal.SIGUSR1 in child.received
        session = peer.core.manager.sessions["4"]
        terminated = await peer.call(session_path("4"), objects.SESSION_IFACE, "Terminate")
        assert terminated.message_type is MessageType.METHOD_RETURN, terminated.body
        assert str(session.stop_cause) == "terminate"
        assert not leader2.alive and not child.alive
        os.close(fd)

    run(test)


def test_introspection_lists_children_and_matches_the_tables(bus_address: str) -> None:
    async def test(peer: Peer) -> None:
        root = await peer.call("/", "org.freedesktop.DBus.Introspectable", "Introspect")
        assert '<node name="org"/>' in root.body[0]
        manager = await peer.call("/org/freedesktop/login1",
                                  "org.freedesktop.DBus.Introspectable", "Introspect")
        assert manager.body[0] == objects.introspect(objects.MANAGER, ["session", "user"])
        ping = await peer.call("/org/freedesktop/login1", "org.freedesktop.DBus.Peer", "Ping")
        assert ping.message_type is MessageType.METHOD_RETURN

    run(test)


def test_a_second_owner_is_refused_with_the_owner_named(bus_address: str) -> None:
    async def test(peer: Peer) -> None:
        other = Login1(peer.login1.service, peer.login1.fifo_dir)
        with pytest.raises(LogoutdError) as raised:
            await other.start()
        message = raised.value.message
        assert message.startswith("org.freedesktop.login1 on the system bus at ")
        assert "is already taken by :" in message and ": refusing to start. " in message
        assert f"pid {os.getpid()}" in message
        assert other not in peer.core.manager.listeners

    run(test)


def test_fifos_are_reopened_after_a_restart(bus_address: str) -> None:
    core = make_core()
    fds: dict[str, int] = {}
    sessions: dict[str, Any] = {}

    async def first(peer: Peer) -> None:
        for sid in (21, 22):
            leader = peer.core.world.spawn(uid=ALICE.uid, sessionid=sid)
            reply = await peer.manager("CreateSession", CREATE_SIG,
                                       *_create_args(ALICE.uid, leader.pid))
            fds[str(sid)] = reply.unix_fds[0]
            sessions[str(sid)] = core.manager.sessions[str(sid)]

    async def second(peer: Peer) -> None:
        assert peer.login1.fifos is not None
        assert peer.login1.fifos.watched() == ["21"]  # 22's writer went away while "down"
        assert str(sessions["22"].stop_cause) == "reference-closed"
        assert sessions["21"].stop_cause is None
        os.close(fds["21"])
        await _until(lambda: sessions["21"].stop_cause is not None)

    async def both() -> None:
        fifo_dir = Path(tempfile.mkdtemp(prefix="logoutd-test-fifo-"))
        try:
            for step in (first, second):
                served = _served(core)
                shutil.rmtree(served.fifo_dir)
                served.fifo_dir = fifo_dir
                peer = await served.__aenter__()
                try:
                    await step(peer)
                finally:
                    client, login1 = served.client, served.login1
                    client.disconnect()
                    await login1.close()
                if step is first:
                    os.close(fds["22"])  # the PAM process of 22 exits while logoutd is down
        finally:
            shutil.rmtree(fifo_dir, ignore_errors=True)

    asyncio.run(both())



def test_the_name_is_taken_back_after_the_bus_restarts(private_bus: PrivateBus) -> None:
    async def test(peer: Peer) -> None:
        peer.client.disconnect()
        private_bus.stop()  # dbus-daemon restarted (an upgrade, say)
        await _until(lambda: peer.login1.bus is None)
        private_bus.start()
        client = await MessageBus(bus_type=dbus_fast.BusType.SYSTEM).connect()
        try:
            async def owned() -> bool:
                reply = await client.call(Message(
                    destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus", member="NameHasOwner", signature="s",
                    body=[NAME]))
                return bool(reply.body[0])

            deadline = asyncio.get_running_loop().time() + 10
            while not await owned():
                assert asyncio.get_running_loop().time() < deadline, "name not taken back"
                await asyncio.sleep(0.05)
            reply = await client.call(Message(destination=NAME, path=ROOT,
                                              interface=objects.MANAGER_IFACE,
                                              member="ListSessions"))
            assert reply.message_type is MessageType.METHOD_RETURN, reply.body
        finally:
            client.disconnect()

    run(test)


def test_close_cancels_and_awaits_the_calls_in_flight(bus_address: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    async def test(peer: Peer) -> None:
        started, cancelled = asyncio.Event(), asyncio.Event()

        async def stuck(msg: Message) -> Message | None:
            started.set()
            try:
                await asyncio.Event().wait()
            finally:
                cancelled.set()
            return None

        monkeypatch.setattr(peer.login1.handlers, "handle", stuck)
        call = asyncio.ensure_future(peer.call(ROOT, "org.freedesktop.DBus.Peer", "Ping"))
        await asyncio.wait_for(started.wait(), 3)
        await peer.login1.close()
        in_flight = [t for t in asyncio.all_tasks()
                     if getattr(t.get_coro(), "__qualname__", "") == "Login1._answer"]
        assert cancelled.is_set() and in_flight == []  # ended, not left pending
        call.cancel()

    run(test)
