"""A picture sent from a page's upload form: a ``multipart/form-data`` body, read as it comes.

An upload may be as large as any image onmodel takes (64 MB), so it is never held whole: the
server keeps such a body in a temporary file (see ``server``), and this reads it from there a
chunk at a time, writing the file part to a file of its own and keeping only the few short
text fields beside it. (The standard library's ``email`` parser holds a body in memory, and
``cgi`` is gone from Python 3.13.)
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from email.utils import collapse_rfc2231_value
from pathlib import Path, PurePosixPath

from onmodel.errors import InvalidImageError, UsageError

CHUNK = 64 * 1024
MAX_FIELD = 4 * 1024  # a text field beside the picture (a gen id): a line, not a document
MAX_PART_HEAD = 8 * 1024
MAX_NAME = 100  # characters of the browser's file name kept
_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{1,70}$")  # RFC 2046's characters
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


@dataclass(frozen=True)
class Upload:
    fields: dict[str, str]  # the text fields
    file: Path | None  # where the file part was written; None: the form sent no file
    filename: str  # the file's name as the browser gave it (its last part, made safe)


def read_upload(
    stream: io.BufferedIOBase,
    length: int,
    content_type: str,
    folder: Path,
    *,
    file_field: str,
    max_file: int,
) -> Upload:
    """Read ``length`` bytes of a ``multipart/form-data`` body from ``stream``: the part named
    ``file_field`` is written into ``folder`` under the browser's file name, at most
    ``max_file`` bytes of it; the other parts are text fields of at most :data:`MAX_FIELD`.
    A body that is not such a form, or is cut short, is a :class:`UsageError`."""
    delimiter = b"--" + _boundary(content_type)
    body = _Body(stream, length)
    if not body.skip_to(delimiter):
        raise UsageError("the form arrived without its parts; send it again")
    fields: dict[str, str] = {}
    file: Path | None = None
    filename = ""
    while (after := body.take(2)) != b"--":
        if after != b"\r\n":
            raise UsageError("the form's parts are garbled; send it again")
        head = bytearray()
        if not body.copy_to(b"\r\n\r\n", _bounded(head, MAX_PART_HEAD, "a form part's head")):
            raise UsageError("the form arrived cut short; send it again")
        name, given = _disposition(bytes(head))
        if name != file_field:
            value = bytearray()
            complete = body.copy_to(b"\r\n" + delimiter, _bounded(value, MAX_FIELD, name))
            fields[name] = value.decode("utf-8", "replace")
        elif not given:  # no file chosen: a browser sends an empty part without a name
            complete = body.skip_to(b"\r\n" + delimiter)
        else:
            if file is not None:
                raise UsageError("send one picture at a time")
            filename = _safe_name(given)
            file = folder / filename
            with file.open("wb") as out:
                sink = _bounded_file(out.write, max_file)
                complete = body.copy_to(b"\r\n" + delimiter, sink)
        if not complete:
            raise UsageError("the form arrived cut short; send it again")
    return Upload(fields, file, filename)


class _Body:
    """The body, read a chunk at a time, never past its declared length."""

    def __init__(self, stream: io.BufferedIOBase, length: int) -> None:
        self.stream = stream
        self.left = length
        self.buffer = bytearray()

    def _more(self) -> bool:
        if self.left <= 0:
            return False
        chunk = self.stream.read(min(CHUNK, self.left))
        if not chunk:
            self.left = 0  # shorter than declared: the end
            return False
        self.left -= len(chunk)
        self.buffer += chunk
        return True

    def take(self, size: int) -> bytes:
        while len(self.buffer) < size and self._more():
            pass
        taken = bytes(self.buffer[:size])
        del self.buffer[:size]
        return taken

    def skip_to(self, marker: bytes) -> bool:
        return self.copy_to(marker, lambda data: None)

    def copy_to(self, marker: bytes, sink: Callable[[bytes], None]) -> bool:
        """Hand what comes before ``marker`` to ``sink`` and read past the marker; False when
        the body ends without it. Only a marker's length is ever held back, so a part of any
        size passes through in chunks."""
        while True:
            at = self.buffer.find(marker)
            if at >= 0:
                sink(bytes(self.buffer[:at]))
                del self.buffer[: at + len(marker)]
                return True
            ready = len(self.buffer) - (len(marker) - 1)  # the rest may begin a marker
            if ready > 0:
                sink(bytes(self.buffer[:ready]))
                del self.buffer[:ready]
            if not self._more():
                return False


def _bounded(into: bytearray, limit: int, what: str) -> Callable[[bytes], None]:
    def add(data: bytes) -> None:
        into.extend(data)
        if len(into) > limit:
            raise UsageError(f"{what} is longer than {limit} bytes")

    return add


def _bounded_file(write: Callable[[bytes], object], limit: int) -> Callable[[bytes], None]:
    written = 0

    def add(data: bytes) -> None:
        nonlocal written
        written += len(data)
        if written > limit:
            raise InvalidImageError(f"the picture is larger than {limit // (1024 * 1024)} MB")
        write(data)

    return add


def _boundary(content_type: str) -> bytes:
    header = _header("Content-Type", content_type)
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise UsageError("send the picture with the page's upload form (multipart/form-data)")
    if not _BOUNDARY.match(boundary):
        raise UsageError("the form's boundary is malformed")
    return boundary.encode("ascii")


def _disposition(head: bytes) -> tuple[str, str | None]:
    """A part's field name, and its file name (None for a text field)."""
    headers = HeaderParser().parsestr(head.decode("utf-8", "replace"))
    name = headers.get_param("name", header="content-disposition")
    filename = headers.get_param("filename", header="content-disposition")
    return (
        collapse_rfc2231_value(name) if name is not None else "",
        collapse_rfc2231_value(filename) if filename is not None else None,
    )


def _header(name: str, value: str) -> Message:
    message = Message()
    message[name] = value
    return message


def _safe_name(given: str) -> str:
    """The browser's file name as a name in our own folder: its last part, no separators or
    control characters, not too long (the extension kept), ``picture`` if nothing is left."""
    name = _UNSAFE.sub("", PurePosixPath(given.replace("\\", "/")).name).strip()
    if len(name) > MAX_NAME:
        suffix = PurePosixPath(name).suffix[:10]
        name = name[: MAX_NAME - len(suffix)] + suffix
    return name if name not in ("", ".", "..") else "picture"
