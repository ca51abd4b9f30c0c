"""Bounds on what users hand onmodel: text, numbers and files, checked before anything is written.

Every limit here exists because an input without one either hung onmodel, exhausted memory, or
reached the database as something it could not store (a NUL byte on PostgreSQL, an id past
SQLite's 64-bit integers). Checking them in one place makes the refusal the same on every
database and from every entry point: CLI, shot lists, the web form and library calls.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from decimal import Decimal, InvalidOperation
from pathlib import Path

from onmodel.errors import InputError, NotFoundError, UsageError

MAX_ID = 2**63 - 1  # SQLite's INTEGER and PostgreSQL's BIGINT; no row can have a larger id
MAX_NAME_LENGTH = 200  # a character's name or a session's title: a label, not a description
# A slug (what users type for a character or session): the slug columns hold 64 characters
# (VARCHAR counts characters, not bytes), and 192 bytes of UTF-8 keep a slug of any script a
# valid file name with room to spare (``<slug>-export.zip`` within 255 bytes); every letter of
# the Basic Multilingual Plane (Latin, Cyrillic, kana, CJK) takes at most 3 bytes, so only
# letters beyond it (4 bytes each) make a slug shorter than 64 characters.
MAX_SLUG_LENGTH = 64
MAX_SLUG_BYTES = 192
MAX_FIELD_LENGTH = 32_000  # a prompt or shot field: the longest prompt any image model takes
MAX_SHEET_BYTES = 256 * 1024  # a model sheet is a page of traits; a megabyte is a mistake
MAX_IMAGE_BYTES = 64 * 1024 * 1024  # the largest file the image APIs accept is 50 MB

# C0 and C1 controls and DEL (tab and newline allowed in multi-line fields), and the
# bidirectional overrides that make text read differently from what it says ("Trojan Source").
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# one-line fields: no line breaks of any kind (Unicode's line and paragraph separators too)
_CONTROL_SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def check_text(value: str, what: str, *, max_length: int, multiline: bool = True) -> str:
    """Refuse control characters and overlong text; return ``value`` unchanged.

    Control characters have no place in a prompt, and some cannot be stored at all (PostgreSQL
    refuses NUL) or rewrite the user's terminal when printed (escape sequences).
    """
    if len(value) > max_length:
        raise InputError(f"{what} is {len(value):,} characters long; at most {max_length:,}")
    pattern = _CONTROL if multiline else _CONTROL_SINGLE_LINE
    found = pattern.search(value)
    if found is not None:
        raise InputError(
            f"{what} holds a control character ({describe_character(found.group())}); "
            "remove it and try again"
        )
    return value


def escape_controls(text: str) -> str:
    """``"\x1b]0;pwned\x07"`` -> ``"\\x1b]0;pwned\\x07"``: shown, never obeyed, by a terminal.

    Names and prompts stored before they were checked, and text a provider returns, may still
    hold escape sequences; printed raw, they retitle or clear the user's terminal.
    """
    return _CONTROL.sub(lambda found: repr(found.group())[1:-1], text)


def describe_character(char: str) -> str:
    """``U+001B ESCAPE``: how a control character is named in an error message."""
    name = unicodedata.name(char, "") or _CONTROL_NAMES.get(char, "control character")
    return f"U+{ord(char):04X} {name}"


_CONTROL_NAMES = {"\x00": "NUL", "\x1b": "ESCAPE", "\x07": "BELL", "\x7f": "DELETE"}


def check_id(value: int, what: str = "id") -> int:
    """An id no database row can have is simply not found, never an overflow inside a driver."""
    if value < 1 or value > MAX_ID:
        raise NotFoundError(f"no {what} {value}")
    return value


def check_amount(value: Decimal | float | str, what: str) -> Decimal:
    """A money limit: a finite, non-negative number of dollars."""
    try:
        amount = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise InputError(f"{what} must be a number of dollars, not {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise InputError(f"{what} must be a finite amount of dollars of 0 or more, not {value}")
    return amount


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """Read at most ``limit`` bytes, refusing larger files, devices and endless streams.

    ``Path.read_bytes`` on ``/dev/zero`` or a huge file reads until memory runs out; reading
    one byte past the limit is enough to know the file is too big.
    """
    try:
        # non-blocking, so that opening a named pipe with no writer returns at once; only
        # regular files are read (a pipe or a device could stall or never end)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UsageError(f"{what} {path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    kind = os.fstat(fd).st_mode
    if not stat.S_ISREG(kind):
        os.close(fd)
        if stat.S_ISDIR(kind):
            raise UsageError(f"{what} {path} is a folder, not a file")
        raise UsageError(f"{what} {path} is not a regular file (a device, pipe or socket)")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise InputError(f"{what} {path} is larger than {_size(limit)}")
    return data


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
