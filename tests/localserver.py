"""The lifecycle the local fake APIs share: a threaded WSGI server on 127.0.0.1, on a free
port, started and stopped as a context manager (``with FakeFlux() as server: ...``)."""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any, Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

log = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    """Access lines go to ``logging`` at debug level, never to the test's stderr."""

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug("%s %s", type, message % args if args else message)


class LocalServer:
    """Subclasses answer requests in :meth:`_wsgi`."""

    _server: BaseWSGIServer | None = None
    _thread: threading.Thread | None = None

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._server = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=type(self).__name__,
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        """Where it listens (``http://127.0.0.1:PORT``)."""
        assert self._server is not None, f"start it first (with {type(self).__name__}() as ...)"
        return f"http://127.0.0.1:{self._server.port}"
