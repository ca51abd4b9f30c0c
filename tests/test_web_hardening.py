"""``onmodel serve`` under hostile or clumsy clients: floods, stalled and half-sent requests,
lying Content-Length headers, and ids no database row can have. Every server here is real,
on 127.0.0.1, with short time-outs so a stalled client is cut off quickly."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest

from onmodel.studio import Studio
from onmodel.web.app import MAX_BODY
from onmodel.web.server import WORKER_PREFIX, make_server
from test_web_fixtures import Series

pytest_plugins = ["test_web_fixtures"]  # its fixtures: controls, series

BIG = "9" * 25  # beyond SQLite's 64-bit integers
HUGE = "9" * 5000  # beyond what int() parses by default
CLIENT_TIMEOUT = 30.0  # generous: only a hang should reach it


@dataclass
class Live:
    port: int
    log: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=CLIENT_TIMEOUT)

    def head(self, method: str, path: str, extra: str = "") -> bytes:
        origin = f"Origin: http://{self.host}\r\n" if method == "POST" else ""
        return f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{origin}{extra}\r\n".encode()

    def exchange(self, data: bytes) -> bytes:
        """Send ``data``, then read until the server closes the connection."""
        with self.connect() as connection:
            connection.sendall(data)
            return _read_to_end(connection)

    def status(self, method: str, path: str, body: str = "") -> int:
        extra = "Content-Type: application/x-www-form-urlencoded\r\n" if body else ""
        extra += f"Content-Length: {len(body.encode())}\r\n" if body else ""
        return _status(self.exchange(self.head(method, path, extra) + body.encode()))


Start = Callable[..., Live]


@pytest.fixture
def start(studio: Studio) -> Iterator[Start]:
    """Start servers with the given pool and time-out; all are stopped after the test."""
    stops: list[Callable[[], None]] = []

    def started(*, workers: int = 4, request_timeout: float = 0.5, **options: int) -> Live:
        live = Live(0)
        server, app = make_server(
            studio,
            "127.0.0.1",
            0,
            allow_remote=False,
            log=live.log.append,
            workers=workers,
            request_timeout=request_timeout,
            **options,
        )
        live.port = int(server.server_address[1])
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(CLIENT_TIMEOUT)
            app.runner.join(CLIENT_TIMEOUT)

        stops.append(stop)
        return live

    yield started
    for stop in stops:
        stop()


def _read_to_end(connection: socket.socket) -> bytes:
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def _status(reply: bytes) -> int:
    assert reply.startswith(b"HTTP/1."), reply[:200]
    return int(reply.split(b" ", 2)[1])


def _new_workers(before: set[threading.Thread]) -> list[threading.Thread]:
    return [
        t for t in threading.enumerate() if t.name.startswith(WORKER_PREFIX) and t not in before
    ]


# --------------------------------------------------------------------------- load


def test_a_flood_of_connections_is_all_answered_by_a_bounded_pool(start: Start) -> None:
    before = set(threading.enumerate())
    live = start(workers=4)
    statuses: list[int | str] = []
    most_workers = 0

    def fetch() -> None:
        nonlocal most_workers
        try:
            statuses.append(live.status("GET", "/static/style.css"))
        except OSError as exc:
            statuses.append(type(exc).__name__)
        most_workers = max(most_workers, len(_new_workers(before)))

    clients = [threading.Thread(target=fetch) for _ in range(300)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(CLIENT_TIMEOUT * 2)
    assert statuses == [200] * 300
    assert 1 <= most_workers <= 4


def test_half_sent_requests_do_not_keep_others_waiting(start: Start) -> None:
    """The stalled clients' deadline is far off, so only not waiting on them lets the normal
    request through; they hold sockets, not workers."""
    before = set(threading.enumerate())
    live = start(workers=2, request_timeout=120.0)
    stalled = [live.connect() for _ in range(50)]
    try:
        for connection in stalled:
            connection.sendall(b"GET / HTTP/1.1\r\nHost: ")
        stalled[0].sendall(b"127.0.0")  # and one that trickles
        assert live.status("GET", "/static/app.js") == 200
        assert live.status("GET", "/") == 200
    finally:
        for connection in stalled:
            connection.close()
    assert len(_new_workers(before)) <= 2


def test_a_stalled_request_is_answered_408_and_closed(start: Start) -> None:
    live = start(request_timeout=0.3)
    half_head = live.exchange(b"GET / HTTP/1.1\r\nHost: ")
    assert _status(half_head) == 408
    short_body = live.head("POST", "/shots", "Content-Length: 200000\r\n") + b"key=ab"
    assert _status(live.exchange(short_body)) == 408
    assert live.exchange(b"") == b""  # an idle connection is closed without a word
    assert sum("refused: request timeout" in line for line in live.log) == 2


# --------------------------------------------------------------------------- bodies


@pytest.mark.parametrize("declared", ["-5", "abc", "5x", "+5", "0x10", "1e3"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_malformed_content_length_is_a_400(
    start: Start, capfd: pytest.CaptureFixture[str], declared: str, method: str
) -> None:
    live = start()
    path = "/shots" if method == "POST" else "/"
    reply = live.exchange(live.head(method, path, f"Content-Length: {declared}\r\n"))
    assert _status(reply) == 400
    assert b"Content-Length must be a number of bytes" in reply
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("declared", [str(MAX_BODY + 1), "1000000000000", HUGE])
def test_an_oversized_body_is_refused_413_without_being_read(start: Start, declared: str) -> None:
    live = start(request_timeout=120.0)  # were the body awaited, the client would time out
    with live.connect() as connection:
        connection.sendall(live.head("POST", "/shots", f"Content-Length: {declared}\r\n"))
        connection.sendall(b"key=ab")
        reply = _read_to_end(connection)
    assert _status(reply) == 413 and f"at most {MAX_BODY} bytes".encode() in reply


def test_a_body_within_the_limit_is_received_in_full(
    start: Start, series: Series, isolated_home: Path
) -> None:
    live = start()
    note = "n" * 1500 + "é"  # a long field, multi-byte at the very end
    body = f"note={quote(note)}"
    assert live.status("POST", f"/images/{series.crying}/annotate", body) == 303
    with Studio.open(isolated_home) as other:  # a second studio: it reached the database
        assert other.image(series.crying).row.note == note


# --------------------------------------------------------------------------- ids and names


@pytest.mark.parametrize(
    "path",
    [
        f"/files/{BIG}",
        f"/api/images/{BIG}",
        f"/images/{BIG}",
        f"/thumbs/{BIG}/96",
        f"/thumbs/1/{HUGE}",
        f"/files/{HUGE}",
        f"/sessions/{BIG}",
        f"/api/sessions/{BIG}",
        "/files/-1",
        "/images/-1",
        "/static/" + "a" * 5000 + ".css",
    ],
)
def test_out_of_range_ids_and_long_names_are_404(
    start: Start, capfd: pytest.CaptureFixture[str], path: str
) -> None:
    assert start().status("GET", path) == 404
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize(
    ("path", "form", "expected"),
    [
        (f"/images/{BIG}/annotate", "starred=1", 404),
        ("/images/{crying}/annotate", "rating=-1", 400),
        ("/images/{crying}/annotate", f"rating={BIG}", 400),
        ("/images/{crying}/annotate", "rating=%C2%B2", 400),  # a superscript two
        ("/shots", f"session={{session}}&key={'a' * 32}&from={BIG}", 404),
        ("/shots", f"session={{session}}&key={'a' * 32}&from=-3", 400),
        ("/shots", f"session={{session}}&key={'a' * 32}&from={HUGE}", 404),
        ("/shots", f"session={BIG}&key={'a' * 32}", 404),
        ("/shots", f"session=-2&key={'a' * 32}", 404),
    ],
)
def test_numbers_in_forms_are_checked_before_the_database(
    start: Start,
    series: Series,
    capfd: pytest.CaptureFixture[str],
    path: str,
    form: str,
    expected: int,
) -> None:
    names = {"crying": series.crying, "session": series.session}
    status = start().status("POST", path.format(**names), form.format(**names))
    assert status == expected
    assert "Traceback" not in capfd.readouterr().err
