"""Names in any script: a character called ミア or Мия gets a slug its owner can read and type.

Slugs keep letters of every script (NFKC-normalised, lower-cased), fold accented Latin letters to
ASCII as they always did, and turn everything else (spaces, punctuation, emoji) into dashes. An
emoji is not a letter: a name of emoji alone has no slug and asks for ``--slug``.
"""

from __future__ import annotations

import http.client
import json
import unicodedata
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from cli_inprocess import run_cli, snapshot
from onmodel.errors import InvalidSlugError
from onmodel.limits import MAX_SLUG_BYTES, MAX_SLUG_LENGTH
from onmodel.slugs import check_slug, slugify
from onmodel.studio import Studio
from test_web_fixtures import Served

pytest_plugins = ["test_web_fixtures"]  # its fixture: served (the web server on a free port)

PROMPT = "a cheerful girl with orange hair and green eyes"


# ------------------------------------------------------------------ the CLI


def test_a_japanese_character_and_its_session_from_the_cli(isolated_home: Path) -> None:
    made = run_cli(isolated_home, "character", "new", "ミア", "--prompt", PROMPT)
    assert made.code == 0, made.stderr
    assert "created character ミア" in made.stdout

    started = run_cli(isolated_home, "session", "new", "ミア", "--title", "ミアの一週間")
    assert started.code == 0, started.stderr
    assert "started session ミアの一週間 for ミア" in started.stdout

    shot = run_cli(isolated_home, "shot", "--pose", "waving")
    assert shot.code == 0, shot.stderr
    tree = run_cli(isolated_home, "tree")
    assert tree.code == 0 and "ミアの一週間 — ミア" in tree.stdout and "waving" in tree.stdout

    shown = json.loads(run_cli(isolated_home, "character", "show", "ミア", "--json").stdout)
    assert (shown["slug"], shown["name"], shown["sessions"]) == ("ミア", "ミア", ["ミアの一週間"])
    used = run_cli(isolated_home, "session", "use", "ミアの一週間")
    assert used.code == 0 and "current session: ミアの一週間" in used.stdout


def test_a_cyrillic_name_is_lower_cased_and_its_sessions_numbered(isolated_home: Path) -> None:
    made = run_cli(isolated_home, "character", "new", "Мия Иванова", "--prompt", PROMPT)
    assert made.code == 0, made.stderr
    assert "created character мия-иванова" in made.stdout

    # the name (as typed, capitals and all) and the slug both find the character
    first = run_cli(isolated_home, "session", "new", "Мия Иванова")
    second = run_cli(isolated_home, "session", "new", "мия-иванова")
    assert "started session мия-иванова for мия-иванова" in first.stdout, first.stderr
    assert "started session мия-иванова-2 for мия-иванова" in second.stdout, second.stderr
    sessions = json.loads(run_cli(isolated_home, "session", "list", "--json").stdout)
    assert [s["slug"] for s in sessions] == ["мия-иванова", "мия-иванова-2"]


def test_an_emoji_is_not_a_letter(isolated_home: Path) -> None:
    """Emoji become dashes like other symbols: kept out of the slug, never the whole of it."""
    with_letters = run_cli(isolated_home, "character", "new", "Mia 🌸", "--prompt", PROMPT)
    assert "created character mia" in with_letters.stdout, with_letters.stderr

    before = snapshot(isolated_home)
    only_emoji = run_cli(isolated_home, "character", "new", "🌸", "--prompt", PROMPT)
    assert only_emoji.code == 2
    assert only_emoji.error_lines == [
        "error: cannot make a name from '🌸': it has no letters or digits "
        "(emoji and symbols are not letters); pass --slug"
    ]
    emoji_slug = run_cli(
        isolated_home, "character", "new", "🌸", "--prompt", PROMPT, "--slug", "🌸"
    )
    assert emoji_slug.code == 2 and "invalid slug '🌸'" in emoji_slug.stderr
    assert snapshot(isolated_home) == before  # refused before anything was written

    chosen = run_cli(
        isolated_home, "character", "new", "🌸", "--prompt", PROMPT, "--slug", "sakura"
    )
    assert "created character sakura" in chosen.stdout, chosen.stderr
    shown = json.loads(run_cli(isolated_home, "character", "show", "🌸", "--json").stdout)
    assert (shown["slug"], shown["name"]) == ("sakura", "🌸")


def test_slug_chooses_an_ascii_or_unicode_slug_and_refuses_capitals(isolated_home: Path) -> None:
    ascii_slug = run_cli(
        isolated_home, "character", "new", "ミア", "--prompt", PROMPT, "--slug", "mia-jp"
    )
    assert "created character mia-jp" in ascii_slug.stdout, ascii_slug.stderr
    capital = run_cli(isolated_home, "character", "new", "Мия", "--prompt", PROMPT, "--slug", "Мия")
    assert capital.code == 2
    assert "invalid slug 'Мия'" in capital.stderr and "(such as 'мия')" in capital.stderr
    lower = run_cli(isolated_home, "character", "new", "Мия", "--prompt", PROMPT, "--slug", "мия")
    assert "created character мия" in lower.stdout, lower.stderr


# ------------------------------------------------------------------ the library


def test_the_library_makes_the_same_slugs(studio: Studio) -> None:
    mia = studio.create_character("ミア", prompt=PROMPT, provider="preview")
    mija = studio.create_character("Мия", prompt=PROMPT, provider="preview")
    flower = studio.create_character("Mia 🌸", prompt=PROMPT, provider="preview")
    assert (mia.slug, mija.slug, flower.slug) == ("ミア", "мия", "mia")
    assert studio.character("ミア").id == mia.id and studio.character("Мия").id == mija.id

    week = studio.start_session(mia, title="ミアの一週間", provider="preview")
    plain = studio.start_session(mija, provider="preview")
    numbered = studio.start_session(mija, title="2024", provider="preview")
    assert (week.slug, plain.slug, numbered.slug) == ("ミアの一週間", "мия", "мия-2024")
    assert studio.session("ミアの一週間").id == week.id
    image = week.shot(pose="waving")
    assert image.succeeded and image.parent is not None and image.parent.id == mia.anchor_image_id

    with pytest.raises(InvalidSlugError, match="no letters or digits"):
        studio.create_character("🌸🌸", prompt=PROMPT, provider="preview")
    assert studio.create_character("🌸", prompt=PROMPT, provider="preview", slug="hana").slug == (
        "hana"
    )


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Mia Chen (v2)", "mia-chen-v2"),  # unchanged from the ASCII-only slugs
        ("Zoë", "zoe"),  # accented Latin still folds to ASCII
        ("Łukasz", "lukasz"),  # ... even without a decomposition (was "ukasz")
        ("Straße", "strasse"),
        ("ミーア・チェン", "ミーア-チェン"),  # the katakana middle dot is punctuation
        ("김민지", "김민지"),
        ("मिया", "मिया"),  # vowel signs (marks) stay with their letters
        ("Ελένη", "ελένη"),
        ("ｍｉａ", "mia"),  # full-width forms are NFKC-normalised
        ("İstanbul", "istanbul"),
        ("1️⃣ Mia", "1-mia"),  # a keycap emoji leaves its digit
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug
    assert check_slug(slug) == slug  # every derived slug is a valid explicit one


@pytest.mark.parametrize(
    "bad", ["Мия", "-ミア", "ミア/1", "ミア.png", "٣٣", "🌸", "mia chen", "ｍｉａ"]
)
def test_check_slug_refuses(bad: str) -> None:
    with pytest.raises(InvalidSlugError, match="invalid slug"):
        check_slug(bad)


def test_a_decomposed_slug_is_the_same_slug() -> None:
    assert check_slug(unicodedata.normalize("NFD", "café")) == "café"


def test_slugs_fit_the_columns_and_file_names(studio: Studio) -> None:
    """64 characters (the columns) and 192 bytes (file names): letters beyond the BMP take 4."""
    kana = slugify("ア" * 100)
    assert (len(kana), len(kana.encode())) == (MAX_SLUG_LENGTH, 3 * MAX_SLUG_LENGTH)
    wide = slugify("𠀀" * 100)  # a CJK letter of 4 bytes
    assert len(wide.encode()) <= MAX_SLUG_BYTES and len(wide) == MAX_SLUG_BYTES // 4

    owner = studio.create_character("ア" * 100, prompt=PROMPT, provider="preview")
    first = studio.start_session(owner, provider="preview")
    second = studio.start_session(owner, provider="preview")
    assert owner.slug == kana and second.slug == f"{first.slug}-2"
    assert len(second.slug) <= MAX_SLUG_LENGTH and len(second.slug.encode()) <= MAX_SLUG_BYTES


def test_a_unicode_session_exports_under_its_slug(isolated_home: Path, tmp_path: Path) -> None:
    """The export's folder and zip are named after the slug, which is a valid file name."""
    assert run_cli(isolated_home, "character", "new", "ミア", "--prompt", PROMPT).code == 0
    assert run_cli(isolated_home, "session", "new", "ミア", "--title", "ミアの一週間").code == 0
    assert run_cli(isolated_home, "shot", "--pose", "手を振る").code == 0
    target = tmp_path / "ミアの一週間-export"
    exported = run_cli(isolated_home, "export", "ミアの一週間", "--to", str(target), "--zip")
    assert exported.code == 0, exported.stderr
    assert (target / "index.html").is_file()
    assert (tmp_path / "ミアの一週間-export.zip").is_file()


def test_a_unicode_session_has_a_web_page(served: Served) -> None:
    """``/sessions/<slug>`` percent-encoded, as a browser sends a link to ``ミアの一週間``."""
    mia = served.studio.create_character("ミア", prompt=PROMPT, provider="preview")
    week = served.studio.start_session(mia, title="ミアの一週間", provider="preview")
    week.shot(pose="waving")
    parts = urlsplit(served.url)
    for path in (f"/sessions/{quote(week.slug)}", f"/api/sessions/{quote(week.slug)}"):
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        try:
            connection.request("GET", path, headers={"Host": served.host})
            response = connection.getresponse()
            body = response.read().decode("utf-8")
        finally:
            connection.close()
        assert response.status == 200, (path, body[:200])
        assert "waving" in body
