"""Names users type on the command line: short, lowercase, unambiguous, in any script.

A slug is made of letters of any script, decimal digits and dashes (``mia-chen``, ``ミア``,
``мия-2``), so a name written in Japanese or Russian keeps a slug its owner can read and type.
Latin letters with accents fold to plain ASCII, as they always have (``Zoë`` -> ``zoe``,
``Łukasz`` -> ``lukasz``), so slugs made before Unicode slugs existed are made the same way
today. Whatever else a name holds (spaces, punctuation, emoji, symbols) becomes a dash.

Every slug is safe as a URL path segment (``/sessions/<slug>``: no ``/``, ``?``, ``#``, ``%`` or
``.``) and as a file name (no separators, no leading dot, nothing a file system reserves); it is
in NFKC normal form, so what looks the same is the same slug; and it is at most
``MAX_SLUG_LENGTH`` characters and ``MAX_SLUG_BYTES`` bytes of UTF-8, so the slug columns hold
it and ``<slug>-export.zip`` stays within a file name's 255 bytes.
"""

from __future__ import annotations

import unicodedata

from onmodel.errors import InvalidSlugError
from onmodel.limits import MAX_SLUG_BYTES, MAX_SLUG_LENGTH

# Generated session slugs get ``-2``, ``-3``... when taken: their base leaves room for that.
SUFFIX_ROOM = len("-9999")

# Latin letters that have no decomposition to fold: what an English keyboard types for them.
_LATIN = {
    "ß": "ss",
    "æ": "ae",
    "œ": "oe",
    "ø": "o",
    "đ": "d",
    "ð": "d",
    "ł": "l",
    "þ": "th",
    "ı": "i",
    "ŋ": "n",
    "ħ": "h",
}

_LETTER = ("Lu", "Ll", "Lt", "Lm", "Lo")
_MARK = ("Mn", "Mc")  # vowel signs and viramas: part of the letters of many scripts


def slugify(name: str, *, lead: str = "") -> str:
    """``"Mia Chen (v2)"`` -> ``mia-chen-v2``, ``"ミア"`` -> ``ミア``, ``"Мия 🌸"`` -> ``мия``.

    Raises :class:`InvalidSlugError` when the name has no letter or digit at all (``"🌸"``).
    A slug of only digits would read as an id: it is led by ``lead`` and a dash (a session
    titled "2024" of ``mia`` becomes ``mia-2024``), or refused when there is no ``lead``.
    """
    text = _normal(name)
    out: list[str] = []
    previous = "-"  # what the last character became: "ascii", "other" or "-"
    for char in text:
        kind, kept = _classify(char, previous)
        if kind == "skip":
            continue
        if kind == "-":
            if previous != "-":
                out.append("-")
            previous = "-"
            continue
        out.append(kept)
        previous = kind
    slug = cut("".join(out).strip("-"), MAX_SLUG_LENGTH, MAX_SLUG_BYTES)
    if not slug:
        raise InvalidSlugError(
            f"cannot make a name from {name!r}: it has no letters or digits (emoji and symbols "
            "are not letters); pass --slug"
        )
    if slug.isdigit():
        if not lead:
            raise InvalidSlugError(
                f"cannot make a name from {name!r}: a name of only digits would read as an id; "
                "pass --slug"
            )
        slug = cut(f"{lead}-{slug}", MAX_SLUG_LENGTH, MAX_SLUG_BYTES)
    return slug


def check_slug(slug: str) -> str:
    """An explicit slug (``--slug``), returned in its normal form or refused.

    Canonically equivalent spellings (a decomposed ``é``) are the same slug; anything else a
    derived slug could not be (capitals, spaces, symbols, all digits) is refused, naming what
    would be accepted instead.
    """
    given = unicodedata.normalize("NFC", slug)
    if _is_slug(given):
        return given
    hint = ""
    try:
        suggestion = slugify(slug)
    except InvalidSlugError:
        suggestion = ""
    if suggestion and suggestion != given:
        hint = f" (such as {suggestion!r})"
    raise InvalidSlugError(
        f"invalid slug {slug!r}: use 1-{MAX_SLUG_LENGTH} lowercase letters (of any script), "
        "digits and dashes, starting with a letter or digit, and not only digits" + hint
    )


def session_base(slug: str) -> str:
    """A generated session slug's base, short enough to take a ``-N`` suffix and still fit."""
    return (
        cut(slug, MAX_SLUG_LENGTH - SUFFIX_ROOM, MAX_SLUG_BYTES - SUFFIX_ROOM).rstrip("-") or slug
    )


def cut(slug: str, max_chars: int, max_bytes: int) -> str:
    """``slug`` cut to fit, never between a letter and its marks, never ending in a dash."""
    end = min(len(slug), max_chars)
    while end and len(slug[:end].encode("utf-8")) > max_bytes:
        end -= 1
    while 0 < end < len(slug) and unicodedata.category(slug[end]) in _MARK:
        end -= 1  # the next character belongs to this one: cut before both
    return slug[:end].rstrip("-")


def _normal(text: str) -> str:
    """NFKC (full-width and compatibility forms become plain ones), lower-cased, and NFKC
    again: lower-casing can leave a decomposed sequence (``İ`` -> ``i̇``)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).lower())


def _classify(char: str, previous: str) -> tuple[str, str]:
    """What one character of a normalised name becomes: ``("ascii"|"other", text)``, a dash
    (``"-"``) or nothing (``"skip"``: invisible format characters such as a zero-width joiner).
    """
    if char.isascii():
        return ("ascii", char) if char.isalnum() else ("-", "")
    category = unicodedata.category(char)
    if category in _MARK:
        # a mark belongs to the letter before it: kept with a letter of its script, dropped
        # with a folded Latin letter (its accent) and after a dash (nothing to attach to)
        if previous == "other" and not _is_invisible(char):
            return "other", char
        return "skip", ""
    if category == "Cf" or _is_invisible(char):
        return "skip", ""
    if category in _LETTER or category == "Nd":
        folded = _fold_latin(char)
        return ("ascii", folded) if folded else ("other", char)
    return "-", ""


def _fold_latin(char: str) -> str:
    """``é`` -> ``e``, ``ł`` -> ``l``; ``""`` for a letter that is not an accented Latin one."""
    if char in _LATIN:
        return _LATIN[char]
    parts = unicodedata.normalize("NFKD", char)
    base, marks = parts[0], parts[1:]
    if base.isascii() and base.isalnum() and all(unicodedata.combining(m) for m in marks):
        return base
    return ""


def _is_invisible(char: str) -> bool:
    """Letters and marks that draw nothing (Unicode's default-ignorable ones: variation
    selectors, Hangul fillers...): a slug made of them would look empty, or like another."""
    code = ord(char)
    return (
        0xFE00 <= code <= 0xFE0F
        or 0xE0100 <= code <= 0xE01EF
        or 0x180B <= code <= 0x180F
        or code in _INVISIBLE
    )


_INVISIBLE = {0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0}


def _is_slug(slug: str) -> bool:
    if not slug or len(slug) > MAX_SLUG_LENGTH or len(slug.encode("utf-8")) > MAX_SLUG_BYTES:
        return False
    if slug.isdigit() or _normal(slug) != slug:  # capitals, full-width or compatibility forms
        return False
    previous = "-"
    for index, char in enumerate(slug):
        if char == "-":
            if index == 0:
                return False
            previous = "-"
            continue
        if char.isascii():
            if not char.isalnum():
                return False
            previous = "ascii"
            continue
        category = unicodedata.category(char)
        if _is_invisible(char):
            return False
        if category in _MARK:
            if previous == "-":
                return False
        elif category not in _LETTER and category != "Nd":
            return False
        previous = "other"
    return True
