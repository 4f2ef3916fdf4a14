"""Property-based tests over the wire protocol, on the in-process server over fakes.

Whatever arrives on the socket — arbitrary bytes, arbitrary JSON values, requests of the right
shape with wrong types — the server answers every line with exactly one well-formed JSON line
(`ok` true/false; when false, a known error code) and never crashes: a fresh client is still
answered afterwards.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logoutd.api import server as server_module
from logoutd.api.client import Client
from logoutd.api.protocol import MAX_MESSAGE, VERSION
from logoutd.api.service import DaemonInfo, Service
from logoutd.errors import ERRORS_BY_CODE
from tests.adapters.conftest import Served
from tests.unit.conftest import make_core

# Methods whose effects stay inside the fakes; reload/create/release/terminate/kill/linger and
# units also only touch fakes here, but keeping them out keeps the examples independent.
READ_ONLY = ["list_sessions", "get_session", "list_users", "get_user", "list_units",
             "show_config", "status", "leftovers"]
# Every method the API has. Hypothesis also draws string literals from the code under test, so
# st.text() can produce a real method name: those are not "unknown methods".
KNOWN_METHODS = frozenset(Service(make_core().manager, DaemonInfo(
    reload=dict, config_files=list, cgroup_root="/")).methods)
ALL_PARAM_NAMES = ["id", "uid", "leader", "service", "type", "class", "tty", "display",
                   "remote_host", "remote_user", "who", "signal", "enable", "pid", "name",
                   "argv", "env", "cwd", "session"]

SETTINGS = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

json_scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2**70, 2**70)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                               max_size=4),
    max_leaves=12,
)


def _reject_constant(name: str) -> Any:
    raise AssertionError(f"answer is not strict JSON: contains {name}")


def exchange(served: Served, data: bytes) -> list[dict[str, Any]]:
    """Send data, half-close, read until the server closes; every line must be strict JSON."""
    received = served.exchange(data)
    assert received == b"" or received.endswith(b"\n"), received[-200:]
    answers = []
    for line in received.splitlines():
        answer = json.loads(line, parse_constant=_reject_constant)
        assert isinstance(answer, dict), line
        assert answer.get("v") == VERSION, answer
        assert isinstance(answer.get("ok"), bool), answer
        if answer["ok"]:
            assert isinstance(answer.get("result"), dict), answer
        else:
            error = answer.get("error")
            assert isinstance(error, dict), answer
            assert error.get("code") in ERRORS_BY_CODE, answer
            assert isinstance(error.get("message"), str) and error["message"], answer
        answers.append(answer)
    return answers


def expected_answers(data: bytes) -> int:
    """One answer per newline-terminated line, plus one for a trailing half-written line."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def still_serving(served: Served) -> None:
    with Client(served.socket, timeout=5) as c:
        assert c.call("status")["sessions"] >= 0


@SETTINGS
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_get_one_wellformed_answer_per_line(served: Served, data: bytes) -> None:
    answers = exchange(served, data)
    assert len(answers) == expected_answers(data), (data, answers)
    still_serving(served)


@SETTINGS
@given(value=json_values)
def test_arbitrary_json_values_as_requests(served: Served, value: Any) -> None:
    answers = exchange(served, json.dumps(value).encode() + b"\n")
    assert len(answers) == 1, (value, answers)
    if not isinstance(value, dict) or not isinstance(value.get("method"), str):
        assert answers[0]["ok"] is False
        assert answers[0]["error"]["code"] == "protocol_error", answers


@SETTINGS
@given(
    method=st.sampled_from(READ_ONLY) | st.text(max_size=20).filter(
        lambda m: m not in KNOWN_METHODS),
    params=st.dictionaries(st.sampled_from(ALL_PARAM_NAMES) | st.text(max_size=8), json_values,
                           max_size=4),
    request_id=json_values,
    version=st.just(VERSION) | json_scalars,
)
def test_requests_of_the_right_shape_with_arbitrary_values(
        served: Served, method: str, params: dict[str, Any], request_id: Any,
        version: Any) -> None:
    request = {"v": version, "method": method, "params": params, "id": request_id}
    answers = exchange(served, json.dumps(request).encode() + b"\n")
    assert len(answers) == 1, (request, answers)
    answer = answers[0]
    if request_id is not None and version == VERSION:
        assert answer.get("id") == request_id, (request, answer)
    if version != VERSION:
        assert answer["ok"] is False and answer["error"]["code"] == "protocol_error", answer
    elif method not in READ_ONLY:
        assert answer["ok"] is False and answer["error"]["code"] == "invalid_argument", answer


@SETTINGS
@given(requests=st.lists(st.sampled_from(READ_ONLY) | st.binary(max_size=50).filter(
    lambda b: b"\n" not in b), min_size=1, max_size=8))
def test_pipelined_mixture_answers_in_order(served: Served, requests: list[Any]) -> None:
    """Good and bad requests on one connection: one answer each, in order, connection kept."""
    lines = [json.dumps({"method": r, "id": i}).encode() if isinstance(r, str) else r
             for i, r in enumerate(requests)]
    answers = exchange(served, b"".join(line + b"\n" for line in lines))
    assert len(answers) == len(requests)
    for i, (r, answer) in enumerate(zip(requests, answers, strict=True)):
        if isinstance(r, str):
            assert answer.get("id") == i, (i, answer)
            assert answer["ok"] is True or answer["error"]["code"] != "protocol_error", answer


ALL_METHODS = [*READ_ONLY, "create_session", "release_session", "terminate_session",
               "kill_session", "terminate_user", "kill_user", "set_linger", "start_scope",
               "start_unit", "stop_unit", "reload"]
# Values that pass the type checks, so the handlers themselves see odd ints and strings.
typed_values = (st.integers(-2**40, 2**40) | st.integers(-2**70, 2**70) | st.booleans()
                | st.text(max_size=20) | st.lists(st.text(max_size=8), max_size=3)
                | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2))


@SETTINGS
@given(method=st.sampled_from(ALL_METHODS),
       params=st.dictionaries(st.sampled_from(ALL_PARAM_NAMES), typed_values, max_size=5))
def test_every_method_with_well_typed_odd_values(served: Served, method: str,
                                                 params: dict[str, Any]) -> None:
    """Every method (on fakes), any mix of parameters: an answer, never a dropped connection."""
    answers = exchange(served, json.dumps({"method": method, "params": params}).encode() + b"\n")
    assert len(answers) == 1, (method, params, answers)
    still_serving(served)


def test_line_limit_is_exact(served: Served) -> None:
    """MAX_MESSAGE bytes, newline included, is the largest request served."""
    head = b'{"method": "status", "id": 1'
    for size, ok in ((MAX_MESSAGE, True), (MAX_MESSAGE + 1, False)):
        line = head + b" " * (size - len(head) - 2) + b"}\n"
        assert len(line) == size
        answers = exchange(served, line)
        assert len(answers) == 1, (size, answers)
        assert answers[0]["ok"] is ok, (size, answers)
        if not ok:
            assert "Request too large" in answers[0]["error"]["message"]


def test_stalled_client_is_closed_after_idle_timeout(served: Served, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A request never finished (or no request at all) is cut off at IDLE_TIMEOUT."""
    monkeypatch.setattr(server_module, "IDLE_TIMEOUT", 0.5)
    for partial in (b"", b'{"method": "sta'):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(served.socket))
            s.sendall(partial)
            t0 = time.monotonic()
            assert s.recv(65536) == b""  # closed without an answer
            assert 0.3 < time.monotonic() - t0 < 3
    still_serving(served)
