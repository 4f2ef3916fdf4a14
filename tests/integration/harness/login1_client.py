"""A root D-Bus client for the tests, run as a separate process (dbus-fast): stands in for a
PAM-less CreateSession caller, a vanished caller, or a rival owner of org.freedesktop.login1.

    login1_client.py ADDRESS create UID [LEADER] [SERVICE]
        CreateSession(UID, LEADER (default 0: the caller), SERVICE, "unspecified", "background",
        ...); prints the reply as one JSON line ({"error": ...} on error), then obeys stdin:
        "close" closes the reference fd (prints {"closed": fd}), "release" calls
        ReleaseSession, EOF exits (the fd closes with the process).
    login1_client.py ADDRESS create-pidfd UID [FLAGS]
        As create, but CreateSessionWithPIDFD (logind 255) with a pidfd of this process as the
        leader, as pam_systemd >= 255 sends it.
    login1_client.py ADDRESS fire UID
        Sends CreateSession(UID, 0, ...) without waiting for its reply, makes sure the bus has
        routed it (a later GetId round trip), prints {"sent": SERIAL}, then waits to be killed.
    login1_client.py ADDRESS own NAME
        RequestName(NAME, DO_NOT_QUEUE); prints {"owned": REPLY_CODE}; holds it until stdin EOF.

Every output line is a JSON object; the wrapper is `harness.bus.Client`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

LOGIN1 = "org.freedesktop.login1"
MANAGER = "org.freedesktop.login1.Manager"
PATH = "/org/freedesktop/login1"
CREATE_SIGNATURE = "uusssssussbssa(sv)"


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def create_message(uid: int, leader: int, service: str) -> Message:
    body = [uid, leader, service, "unspecified", "background", "", "", 0, "", "", False, "", "",
            []]
    return Message(destination=LOGIN1, path=PATH, interface=MANAGER, member="CreateSession",
                   signature=CREATE_SIGNATURE, body=body)


def error_of(reply: Message) -> dict[str, Any] | None:
    if reply.message_type == MessageType.ERROR:
        return {"error": reply.error_name, "message": reply.body[0] if reply.body else ""}
    return None


async def stdin_lines() -> Any:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        yield line.strip()


def create_pidfd_message(uid: int, flags: int) -> Message:
    body = [uid, 0, "logoutd-test-client", "unspecified", "background", "", "", 0, "", "", False,
            "", "", flags, []]
    return Message(destination=LOGIN1, path=PATH, interface=MANAGER,
                   member="CreateSessionWithPIDFD", signature="uhsssssussbssta(sv)", body=body,
                   unix_fds=[os.pidfd_open(os.getpid())])


async def create(bus: MessageBus, msg: Message) -> None:
    reply = await bus.call(msg)
    err = error_of(reply)
    fd = -1
    if err is not None:
        emit(err)
    else:
        sid, path, runtime, fd_index, original_uid, seat, vtnr, existing = reply.body
        fds = reply.unix_fds or []
        fd = fds[fd_index] if 0 <= fd_index < len(fds) else -1
        target = os.readlink(f"/proc/self/fd/{fd}") if fd >= 0 else ""
        emit({"id": sid, "path": path, "runtime_path": runtime, "fd": fd, "fd_target": target,
              "fd_index": fd_index, "n_fds": len(fds), "uid": original_uid, "seat": seat,
              "vtnr": vtnr, "existing": existing, "signature": reply.signature})
    async for line in stdin_lines():
        if line == "close" and fd >= 0:
            os.close(fd)
            emit({"closed": fd})
            fd = -1
        elif line == "release" and err is None:
            msg = Message(destination=LOGIN1, path=PATH, interface=MANAGER,
                          member="ReleaseSession", signature="s", body=[reply.body[0]])
            released = await bus.call(msg)
            emit(error_of(released) or {"released": reply.body[0]})


async def fire(bus: MessageBus, uid: int) -> None:
    msg = create_message(uid, 0, "logoutd-test-fire")
    await bus.send(msg)
    # The bus handles one connection's messages in order: once GetId is answered, the
    # CreateSession has been routed (queued for login1's owner, even a stopped one).
    ping = await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                  interface="org.freedesktop.DBus", member="GetId"))
    assert ping.message_type == MessageType.METHOD_RETURN, ping.body
    emit({"sent": msg.serial, "unique_name": bus.unique_name})
    await asyncio.Event().wait()


async def own(bus: MessageBus, name: str) -> None:
    reply = await bus.call(Message(destination="org.freedesktop.DBus",
                                   path="/org/freedesktop/DBus", interface="org.freedesktop.DBus",
                                   member="RequestName", signature="su", body=[name, 4]))
    emit(error_of(reply) or {"owned": reply.body[0], "unique_name": bus.unique_name})
    async for _ in stdin_lines():
        pass


async def main(argv: list[str]) -> int:
    address, mode, *rest = argv
    bus = await MessageBus(bus_address=address, negotiate_unix_fd=True).connect()
    if mode == "create":
        leader = int(rest[1]) if len(rest) > 1 else 0
        service = rest[2] if len(rest) > 2 else "logoutd-test-client"
        await create(bus, create_message(int(rest[0]), leader, service))
    elif mode == "create-pidfd":
        await create(bus, create_pidfd_message(int(rest[0]), int(rest[1]) if rest[1:] else 0))
    elif mode == "fire":
        await fire(bus, int(rest[0]))
    elif mode == "own":
        await own(bus, rest[0])
    else:
        raise SystemExit(f"unknown mode {mode}")
    bus.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
