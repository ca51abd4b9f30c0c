"""Running the gallery on the standard library's WSGI server, with bounded resources.

A personal, local tool does not need a production server, but it must not fall over when a
page loads fifty thumbnails at once or a client stalls. So, with no dependency: a deep listen
backlog; one thread that receives every request in full (many at a time, each against a
deadline) before a worker sees it, so a client that sends half a request holds a socket rather
than a thread; and a bounded pool of workers that run the app on complete requests only. It
binds to loopback unless the user explicitly asks for more, because the UI can spend money.
A request is held in memory, except the one route's large body (an uploaded picture): that
is written to a temporary file as it arrives, and the app reads it from there.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import queue
import re
import selectors
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from onmodel.errors import UsageError
from onmodel.studio import Studio
from onmodel.web.app import MAX_BODY, GalleryApp, body_limit

if TYPE_CHECKING:
    from _typeshed import OptExcInfo

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_WORKERS = 16  # threads running the app; a browser sends six requests at a time
DEFAULT_MAX_CONNECTIONS = 512  # open at once, arriving or served; more wait in the backlog
DEFAULT_REQUEST_TIMEOUT = 20.0  # seconds for a request to arrive, and for each response write
MAX_HEAD = 64 * 1024  # request line and headers
RECEIVE_SIZE = 64 * 1024
HEAD_END = re.compile(rb"\r?\n\r?\n")
CONTENT_LENGTH = re.compile(rb"^content-length:[ \t]*([0-9]+)[ \t]*\r?$", re.IGNORECASE | re.M)
SPOOL_ABOVE = MAX_BODY  # a body larger than any form (an uploaded picture) waits in a file
WORKER_PREFIX = "onmodel-web-"
LOGGED_LINE = 200  # characters of a request line worth a log entry
Job = tuple[socket.socket, Any]


def _to_stderr(line: str) -> None:
    sys.stderr.write(f"onmodel serve: {line}\n")


class _PooledServer(WSGIServer):
    """At most ``max_connections`` open connections, at most ``workers`` threads running the app.

    A thread per connection let a flood (or a few hundred stalled clients) start as many
    threads as it liked, and the default backlog of 5 reset connections under a burst. Here the
    accept loop hands each connection to the ``_Receiver``, which passes complete requests to
    the workers; past ``max_connections`` the accept loop waits and the kernel queues the rest.
    """

    request_queue_size = 1024  # the kernel caps it at net.core.somaxconn
    allow_reuse_address = True
    log: Callable[[str], None] = staticmethod(_to_stderr)

    def __init__(
        self,
        address: tuple[str, int],
        *,
        workers: int,
        max_connections: int,
        request_timeout: float,
    ) -> None:
        # everything server_close() uses exists before the bind, which calls it when it fails
        self.request_timeout = request_timeout
        self._max_workers = workers
        self._max_open = max_connections
        self._open = 0
        self._working = 0
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._received: dict[socket.socket, io.BufferedIOBase] = {}
        self._receiver = _Receiver(self)
        super().__init__(address, _QuietHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._changed:
            while self._open >= self._max_open:
                if self._closing.is_set():  # shutdown() must not wait for a free slot
                    self.shutdown_request(request)
                    return
                self._changed.wait(0.25)
            self._open += 1
        self._receiver.add(request, client_address)

    def dispatch(
        self, connection: socket.socket, client_address: Any, received: io.BufferedIOBase
    ) -> None:
        """Queue a complete request for a worker, starting one if every worker is busy."""
        self._received[connection] = received
        with self._changed:
            self._working += 1
            if len(self._threads) < min(self._working, self._max_workers):
                name = f"{WORKER_PREFIX}{len(self._threads) + 1}"
                thread = threading.Thread(target=self._work, name=name, daemon=True)
                self._threads.append(thread)
                thread.start()
        self._jobs.put((connection, client_address))

    def take_request(self, connection: socket.socket) -> io.BufferedIOBase:
        """What the receiver gathered for ``connection``, for its handler to parse (and close,
        which removes a body's temporary file)."""
        return self._received.pop(connection)

    def close_connection(self, connection: socket.socket, *, served: bool = False) -> None:
        self.shutdown_request(connection)
        with self._changed:
            self._open -= 1
            if served:
                self._working -= 1
            self._changed.notify()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            connection, client_address = job
            try:
                self.finish_request(connection, client_address)
            except Exception:
                self.handle_error(connection, client_address)
            finally:
                self.close_connection(connection, served=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up costs one log line, not a traceback."""
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handle_error(request, client_address)
            return
        self.log(f"request from {client_address[0]} dropped: {error}")

    def shutdown(self) -> None:
        self._closing.set()
        super().shutdown()

    def server_close(self) -> None:
        super().server_close()
        self._receiver.close()
        with self._changed:
            for _ in self._threads:
                self._jobs.put(None)


class _PooledServer6(_PooledServer):
    address_family = socket.AF_INET6


@dataclass
class _Arrival:
    """A connection whose request is still arriving: in memory, or, once its head declares a
    body over :data:`SPOOL_ABOVE`, in a temporary file (gone when it is closed)."""

    connection: socket.socket
    address: Any
    deadline: float
    received: bytearray = field(default_factory=bytearray)  # everything, or (spooled) nothing
    count: int = 0  # bytes received
    size: int | None = None  # head and body, once the head has arrived
    spool: io.BufferedIOBase | None = None

    def take(self, chunk: bytes) -> None:
        self.count += len(chunk)
        if self.spool is None:
            self.received += chunk
        else:
            self.spool.write(chunk)

    def spool_to(self, spool: io.BufferedIOBase) -> None:
        """Keep the rest in ``spool``, after what has arrived so far."""
        spool.write(self.received)
        self.received = bytearray()
        self.spool = spool

    def request(self) -> io.BufferedIOBase:
        """The request as it arrived, to be read from its start."""
        if self.spool is None:
            return io.BytesIO(bytes(self.received))
        self.spool.seek(0)
        return self.spool

    def discard(self) -> None:
        if self.spool is not None:
            self.spool.close()


class _Receiver:
    """Receives requests on one thread, many at a time, and hands each to the workers only once
    its head and declared body are in: a client that sends half a request, or nothing, costs a
    socket until its deadline, never a worker."""

    def __init__(self, server: _PooledServer) -> None:
        self._server = server
        self._arrivals: dict[socket.socket, _Arrival] = {}
        self._incoming: queue.SimpleQueue[_Arrival | None] = queue.SimpleQueue()
        self._selector = selectors.DefaultSelector()
        self._wake, self._waker = socket.socketpair()
        self._wake.setblocking(False)
        self._waker.setblocking(False)
        self._selector.register(self._wake, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, name="onmodel-receiver", daemon=True)
        self._thread.start()

    def add(self, connection: socket.socket, address: Any) -> None:
        connection.setblocking(False)
        deadline = time.monotonic() + self._server.request_timeout
        self._post(_Arrival(connection, address, deadline))

    def close(self) -> None:
        """Stop, closing every connection whose request has not arrived."""
        self._post(None)
        self._thread.join()

    def _post(self, arrival: _Arrival | None) -> None:
        self._incoming.put(arrival)
        with contextlib.suppress(BlockingIOError):  # when full, a wake-up is already pending
            self._waker.send(b"\0")

    def _run(self) -> None:
        while self._admit():
            for key, _ in self._selector.select(self._time_left()):
                if key.fileobj is not self._wake:
                    self._receive(self._arrivals[cast(socket.socket, key.fileobj)])
            self._expire()
        for arrival in list(self._arrivals.values()):
            self._drop(arrival)
        self._selector.close()
        self._wake.close()
        self._waker.close()

    def _admit(self) -> bool:
        """Register the connections added since the last look; False once asked to stop."""
        with contextlib.suppress(BlockingIOError):
            self._wake.recv(4096)
        while not self._incoming.empty():
            arrival = self._incoming.get()
            if arrival is None:
                return False
            self._arrivals[arrival.connection] = arrival
            self._selector.register(arrival.connection, selectors.EVENT_READ)
        return True

    def _time_left(self) -> float | None:
        if not self._arrivals:
            return None
        soonest = min(arrival.deadline for arrival in self._arrivals.values())
        return max(0.0, soonest - time.monotonic())

    def _receive(self, arrival: _Arrival) -> None:
        try:
            chunk = arrival.connection.recv(RECEIVE_SIZE)
        except BlockingIOError:
            return
        except OSError:
            self._drop(arrival)
            return
        if not chunk and not arrival.count:
            self._drop(arrival)
            return
        if not chunk:  # the client finished sending early: serve what came
            self._hand_on(arrival)
            return
        searched = max(0, arrival.count - 3)  # a head end may straddle two chunks
        arrival.take(chunk)
        if arrival.size is None:
            end = HEAD_END.search(arrival.received, searched)
            if end is None:
                if arrival.count > MAX_HEAD:
                    self._refuse(arrival, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
                return
            body = _body_to_wait_for(arrival.received[: end.start()])
            arrival.size = end.end() + body
            if body > SPOOL_ABOVE:  # the file outlives this call: its reader closes it
                arrival.spool_to(tempfile.TemporaryFile(prefix="onmodel-body-"))  # noqa: SIM115
        if arrival.count >= arrival.size:
            self._hand_on(arrival)

    def _expire(self) -> None:
        now = time.monotonic()
        for arrival in [a for a in self._arrivals.values() if a.deadline <= now]:
            if arrival.count:
                self._refuse(arrival, HTTPStatus.REQUEST_TIMEOUT)
            else:
                self._drop(arrival)  # an idle connection (a browser's preconnect): no request

    def _hand_on(self, arrival: _Arrival) -> None:
        self._forget(arrival)
        arrival.connection.settimeout(self._server.request_timeout)  # for the response
        self._server.dispatch(arrival.connection, arrival.address, arrival.request())

    def _refuse(self, arrival: _Arrival, status: HTTPStatus) -> None:
        """Answer without a worker: the request never arrived in a form worth one."""
        self._server.log(f"request from {arrival.address[0]} refused: {status.phrase.lower()}")
        body = f"{status.phrase}\n".encode()
        head = (
            f"HTTP/1.0 {status.value} {status.phrase}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(OSError):  # a client gone or not reading gets only the close
            arrival.connection.send(head.encode() + body)
        self._drop(arrival)

    def _drop(self, arrival: _Arrival) -> None:
        self._forget(arrival)
        arrival.discard()
        self._server.close_connection(arrival.connection)

    def _forget(self, arrival: _Arrival) -> None:
        self._selector.unregister(arrival.connection)
        del self._arrivals[arrival.connection]


def _body_to_wait_for(head: bytes | bytearray) -> int:
    """The declared body length, or 0 when there is nothing worth waiting for: no length, a
    malformed one, or one over the request's limit (:func:`body_limit`; the app refuses
    those without reading the body)."""
    declared = CONTENT_LENGTH.search(head)
    if declared is None:
        return 0
    line = bytes(head).partition(b"\n")[0].decode("latin-1")
    method, _, rest = line.partition(" ")
    path = unquote(urlsplit(rest.partition(" ")[0]).path, "latin-1")
    limit = body_limit(method.upper(), path)
    digits = declared[1].lstrip(b"0")
    if len(digits) > len(str(limit)) or int(digits or b"0") > limit:
        return 0
    return int(digits or b"0")


class _ServerHandler(ServerHandler):
    """A response the client never took (it stalled or left) is a log line, not a traceback."""

    request_handler: _QuietHandler

    def log_exception(self, exc_info: OptExcInfo) -> None:
        error = exc_info[1]
        if not isinstance(error, OSError):
            super().log_exception(exc_info)
            return
        self.request_handler.log_message("response not delivered: %s", str(error))


class _QuietHandler(WSGIRequestHandler):
    """Serves one request that has arrived in full; logs only what deserves attention:
    changes and errors, not every thumbnail and poll."""

    server: _PooledServer

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the request is already here; the socket is only written to
        self.rfile = self.server.take_request(self.connection)

    def handle(self) -> None:
        """wsgiref's own, but with the server handler above, told the truth about threads."""
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = ""
            self.request_version = ""
            self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        app = self.server.get_app()
        assert app is not None, "make_server sets the app before serving"
        output = cast("IO[bytes]", self.wfile)
        handler = _ServerHandler(
            self.rfile, output, self.get_stderr(), self.get_environ(), multithread=True
        )
        handler.request_handler = self
        handler.run(app)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = int(code) if str(code).isdigit() else 0
        if self.command != "GET" or status >= 400:
            self.log_message('"%s" %s', self.requestline[:LOGGED_LINE], str(code))

    def log_message(self, format: str, *args: Any) -> None:
        self.server.log(format % args)


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address."""
    name = host.strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def check_host(host: str, *, allow_remote: bool) -> None:
    if not allow_remote and not is_loopback(host):
        raise UsageError(
            f"refusing to serve on {host}: it is not a loopback address and anyone who can reach "
            "it could browse your images and spend on your API key; "
            "pass --allow-remote if that is what you want"
        )


def allowed_hosts(host: str, port: int) -> set[str]:
    """The Host header values a browser sends for this server, and no others."""
    names = {"127.0.0.1", "localhost", "[::1]"}
    bare = host.strip("[]")
    names.add(f"[{bare}]" if ":" in bare else bare.lower())
    return {f"{name}:{port}" for name in names}


def make_server(
    studio: Studio,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    allow_remote: bool,
    log: Callable[[str], None] | None = None,
    workers: int = DEFAULT_WORKERS,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
) -> tuple[_PooledServer, GalleryApp]:
    """Bind (port 0 picks a free one) and build the app that knows which Host it answers to."""
    check_host(host, allow_remote=allow_remote)
    if not 0 <= port <= 65535:
        raise UsageError(f"port {port} is not a port: use 1 to 65535, or 0 for a free one")
    bare = host.strip("[]")
    server_class = _PooledServer6 if ":" in bare else _PooledServer
    try:
        server = server_class(
            (bare, port),
            workers=workers,
            max_connections=max_connections,
            request_timeout=request_timeout,
        )
    except OSError as exc:
        hint = "; pass --port 0 to pick a free one" if port else ""
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from exc
    if log is not None:
        server.log = log
    bound_port = int(server.server_address[1])
    # A loopback server answers only to its own names (DNS rebinding); a remote one to any.
    hosts = allowed_hosts(host, bound_port) if is_loopback(host) else None
    app = GalleryApp(studio, allowed_hosts=hosts)
    server.set_app(app)
    return server, app


def url_for(host: str, port: int) -> str:
    bare = host.strip("[]")
    shown = f"[{bare}]" if ":" in bare else bare
    if bare in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
    return f"http://{shown}:{port}/"


def run(
    studio: Studio,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    allow_remote: bool = False,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until Ctrl-C, then let shots in flight finish so none is left pending."""
    server, app = make_server(studio, host, port, allow_remote=allow_remote)
    url = url_for(host, int(server.server_address[1]))
    if on_ready is not None:
        on_ready(url)
    _stop_on_sigterm()
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        running = app.runner.running()
        if running:
            sys.stderr.write(f"onmodel serve: waiting for {running} shot(s) to finish…\n")
        app.runner.join()


def _stop_on_sigterm() -> None:
    """``kill`` (a service manager, a container stop) stops the server as Ctrl-C does, so the
    shots in flight still finish and are recorded."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
