"""Object path labels: sd-bus' bus_label_escape, as pam_systemd and loginctl expect them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logoutd.login1.labels import escape, session_path, unescape, user_path


@pytest.mark.parametrize(("label", "escaped"), [
    ("1", "_31"),  # a leading digit is escaped
    ("33", "_333"),
    ("1004", "_31004"),
    ("c5", "c5"),  # logoutd's counter ids need no escaping
    ("session-2.scope", "session_2d2_2escope"),
    ("", "_"),
    ("a_b", "a_5fb"),
    ("é", "_c3_a9"),  # bytes of the UTF-8 encoding
])
def test_escape_matches_logind(label: str, escaped: str) -> None:
    assert escape(label) == escaped
    assert unescape(escaped) == label


def test_paths() -> None:
    assert session_path("2") == "/org/freedesktop/login1/session/_32"
    assert user_path(1004) == "/org/freedesktop/login1/user/_31004"


@pytest.mark.parametrize("bad", ["_3", "_zz", "a-b", "_c3", "x/y"])
def test_unescape_refuses_what_escape_cannot_produce(bad: str) -> None:
    assert unescape(bad) is None


@given(st.text(min_size=1, max_size=40))
def test_escape_round_trips_and_is_a_valid_path_element(label: str) -> None:
    escaped = escape(label)
    assert escaped and all(c.isascii() and (c.isalnum() or c == "_") for c in escaped)
    assert unescape(escaped) == label
