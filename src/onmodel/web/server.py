"""Running the gallery on the standard library's WSGI server, one thread per request.

A personal, local tool does not need a production server: ``wsgiref`` plus ``ThreadingMixIn``
serves a handful of concurrent requests (a page and its thumbnails) with no dependency. It binds
to loopback unless the user explicitly asks for more, because the UI can spend money.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from onmodel.errors import UsageError
from onmodel.startup import start_up_finished
from onmodel.studio import Studio
from onmodel.web.app import GalleryApp

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def _to_stderr(line: str) -> None:
    sys.stderr.write(f"onmodel serve: {line}\n")


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # request threads never keep the process alive; shot threads do
    allow_reuse_address = True
    log: Callable[[str], None] = staticmethod(_to_stderr)


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    """Log only what deserves attention: changes and errors, not every thumbnail and poll."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = int(code) if str(code).isdigit() else 0
        if self.command != "GET" or status >= 400:
            self.log_message('"%s" %s', self.requestline, str(code))

    def log_message(self, format: str, *args: Any) -> None:
        server = self.server
        log = server.log if isinstance(server, _ThreadingServer) else _to_stderr
        log(format % args)


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
) -> tuple[WSGIServer, GalleryApp]:
    """Bind (port 0 picks a free one) and build the app that knows which Host it answers to."""
    check_host(host, allow_remote=allow_remote)
    bare = host.strip("[]")
    server_class = _ThreadingServer6 if ":" in bare else _ThreadingServer
    try:
        server = server_class((bare, port), _QuietHandler)
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
    start_up_finished()
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
