"""The REST providers' one HTTP caller (``providers/http.py``): what it tries again and what
it never does, against real sockets on 127.0.0.1 and httpx2's MockTransport.

A submission must never be sent twice: once a POST has left, the service may have made (and
billed) it, so a connection cut after sending is one failure of unknown cost, not a retry.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx2
import pytest

from onmodel.providers.base import UNBILLED_FAILURES, ProviderError
from onmodel.providers.http import HttpService, retry_after


@pytest.fixture
def hangs_up() -> Iterator[tuple[str, list[bytes]]]:
    """A server that reads each request and closes without answering."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.05)
    received: list[bytes] = []
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:  # the accept's short time-out: look at ``done`` again
                continue
            with connection:
                received.append(connection.recv(65536))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", received
    done.set()
    thread.join(5)
    listener.close()


def service(base_url: str, **kwargs: object) -> HttpService:
    return HttpService("Stub API", base_url, retries=3, sleep=lambda _: None, **kwargs)  # type: ignore[arg-type]


def test_a_submission_cut_off_after_sending_is_sent_once_and_of_unknown_cost(
    hangs_up: tuple[str, list[bytes]],
) -> None:
    url, received = hangs_up
    with pytest.raises(ProviderError) as raised:
        service(url).request("POST", "/v1/task", json={"prompt": "mia"})
    assert len(received) == 1  # never a second task
    assert raised.value.kind == "connection_lost" and raised.value.kind not in UNBILLED_FAILURES
    assert "dropped after the request was sent" in str(raised.value)


def test_a_poll_cut_off_is_tried_again(hangs_up: tuple[str, list[bytes]]) -> None:
    url, received = hangs_up
    with pytest.raises(ProviderError):
        service(url).request("GET", "/v1/get_result?id=1")
    assert len(received) == 4  # the first attempt and three retries: reading is harmless


def test_nothing_listening_is_tried_again_and_costs_nothing() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    tries: list[float] = []
    caller = HttpService("Stub API", f"http://127.0.0.1:{port}", retries=2, sleep=tries.append)
    with pytest.raises(ProviderError) as raised:
        caller.request("POST", "/v1/task", json={})
    assert raised.value.kind == "connection" and raised.value.kind in UNBILLED_FAILURES
    assert len(tries) == 2  # never sent, so safe to send again
    assert f"could not reach Stub API at http://127.0.0.1:{port}/v1/task" in str(raised.value)


def test_a_rate_limit_waits_what_it_asks_then_gives_up_saying_so() -> None:
    answers = iter([429, 429, 200])
    waits: list[float] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        status = next(answers)
        return httpx2.Response(status, headers={"retry-after": "7"}, json={"detail": "slow"})

    caller = HttpService(
        "Stub API", "http://stub", retries=3, sleep=waits.append,
        transport=httpx2.MockTransport(handler),
    )  # fmt: skip
    assert caller.request("POST", "/v1/task").status_code == 200
    assert waits == [7.0, 7.0]
    limited = HttpService(
        "Stub API", "http://stub", retries=1, sleep=waits.append,
        transport=httpx2.MockTransport(
            lambda r: httpx2.Response(429, headers={"retry-after": "3"}, json={"detail": "slow"})
        ),
    )  # fmt: skip
    with pytest.raises(ProviderError) as raised:
        limited.request("POST", "/v1/task")
    assert raised.value.kind == "rate_limit" and raised.value.retry_after == 3.0
    assert "rate limit hit after 1 retry (HTTP 429): slow; it asks to wait 3 s" in str(raised.value)


def test_a_wait_longer_than_the_cap_fails_at_once() -> None:
    waits: list[float] = []
    caller = HttpService(
        "Stub API", "http://stub", retries=3, sleep=waits.append, max_wait=60,
        transport=httpx2.MockTransport(
            lambda r: httpx2.Response(429, headers={"retry-after": "3600"})
        ),
    )  # fmt: skip
    with pytest.raises(ProviderError) as raised:
        caller.request("GET", "/v1/x")
    assert waits == [] and raised.value.retry_after == 3600.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "12"}, 12.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past: now
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_seconds_milliseconds_and_dates(
    headers: dict[str, str], expected: float | None
) -> None:
    assert retry_after(httpx2.Response(429, headers=headers)) == expected
