"""Messages to bytes and back with dbus-fast's own Marshaller and Unmarshaller.

dbus-fast's Message._marshall never writes the SENDER header field (a client has no use for
it), but a bus, and systemd's private connections, stamp it, and sd-bus matches signals on it
(`sender='org.freedesktop.systemd1'`). So the header is built here, the same way plus sender.
"""

from __future__ import annotations

import io

from dbus_fast import Message, Variant
from dbus_fast._private.marshaller import Marshaller
from dbus_fast._private.unmarshaller import Unmarshaller

_FIELDS = (  # (code, signature, attribute): the D-Bus spec's header fields
    (1, "o", "path"), (2, "s", "interface"), (3, "s", "member"), (4, "s", "error_name"),
    (5, "u", "reply_serial"), (6, "s", "destination"), (7, "s", "sender"),
    (8, "g", "signature"),
)


def encode(msg: Message) -> bytes:
    """The message as sent on the wire, little-endian, with every header field it has."""
    body = bytes(Marshaller(msg.signature, msg.body).marshall())
    fields = [(code, Variant(sig, getattr(msg, attr))) for code, sig, attr in _FIELDS
              if getattr(msg, attr)]
    header = bytes(Marshaller("yyyyuua(yv)", [ord("l"), msg.message_type.value, int(msg.flags),
                                              1, len(body), msg.serial, fields]).marshall())
    return header + b"\0" * (-len(header) & 7) + body


def decode(data: bytes) -> Message | None:
    """One whole message (wire.read_message cut it); None or an exception if it is not one."""
    stream = io.BufferedReader(io.BytesIO(data))
    return Unmarshaller(stream=stream).unmarshall()  # type: ignore[arg-type]
