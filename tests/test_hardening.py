"""Each input a probe used to break onmodel with, refused in one line with nothing written.

The cases are the hardening issue's, one by one: overlong and malformed input, ids past 64-bit
integers, decompression bombs, endless files, control characters, bad session defaults and
colours, escape sequences in names, usage errors, and concurrent creation of the same names.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from cli_inprocess import Outcome, assert_refused_cleanly, run_cli, snapshot
from onmodel.errors import InputError, InvalidImageError, NotFoundError, UsageError
from onmodel.sheet import ModelSheet, ShotRequest
from onmodel.studio import Studio

HUGE = "9999999999999999999999999"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def mia(home: Path) -> Path:
    """A character with a current session and one shot, made offline."""
    assert run_cli(home, "character", "new", "Mia", "--prompt", "a girl with red hair").code == 0
    assert run_cli(home, "session", "new", "mia", "--title", "Week").code == 0
    assert run_cli(home, "shot", "--pose", "waving").code == 0
    return home


def refused(home: Path, *args: str, code: int = 2, says: str = "") -> Outcome:
    """Run a command that must be refused and must leave the store exactly as it was."""
    before = snapshot(home)
    outcome = run_cli(home, *args)
    assert_refused_cleanly(outcome)
    assert outcome.code == code, outcome
    assert says in outcome.stderr, outcome.stderr
    assert snapshot(home) == before, "a refused command wrote something"
    return outcome


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG that declares ``width`` x ``height`` pixels: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------- a character is all or nothing


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--prompt", "x" * 40_000], "40,000 characters"),
        (["--prompt", "a girl", "--size", "banana"], "banana"),
        (["--prompt", "a girl", "--model", "dall-e-3"], "dall-e-3"),
    ],
)
def test_a_refused_character_is_not_half_created(home: Path, extra: list[str], says: str) -> None:
    refused(home, "character", "new", "Big", *extra, says=says)
    assert run_cli(home, "character", "new", "Big", "--prompt", "a girl").code == 0
    assert_refused_cleanly(run_cli(home, "character", "new", "Big", "--prompt", "a girl"))


def test_a_huge_name_or_sheet_is_refused_before_anything_is_written(
    home: Path, tmp_path: Path
) -> None:
    refused(home, "character", "new", "n" * 100_000, "--prompt", "a girl", says="the name")
    sheet = tmp_path / "big.yaml"
    sheet.write_text("style: " + "x" * 1_000_000 + "\n")
    refused(home, "character", "new", "Big", "--prompt", "p", "--sheet", str(sheet), says="KB")
    refused(home, "session", "new", "big", says="no character")


def test_sheet_files_that_are_not_text_or_never_end_are_refused(home: Path, tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("style: caf\xe9 cr\xe8me\n".encode("latin-1"))
    refused(home, "character", "new", "A", "--prompt", "p", "--sheet", str(latin1), says="UTF-8")
    refused(home, "character", "new", "A", "--prompt", "p", "--sheet", "/dev/zero", says="regular")
    big = tmp_path / "big-sheet.yaml"
    big.write_text("style: x\n" + "#" * 300_000 + "\n")
    refused(home, "character", "new", "A", "--prompt", "p", "--sheet", str(big), says="256 KB")
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # no writer: opening it for reading would wait forever
    refused(home, "character", "new", "A", "--prompt", "p", "--sheet", str(fifo), says="pipe")
    refused(home, "character", "new", "A", "--prompt", "p", "--sheet", str(tmp_path), says="folder")


@pytest.mark.parametrize(
    "colour", ["rgb(99999999999999999999999,0,0)", "rgb(300,0,0)", "banana", "#12345", "x" * 100]
)
def test_sheet_colours_must_be_colours(home: Path, tmp_path: Path, colour: str) -> None:
    sheet = tmp_path / "sheet.yaml"
    sheet.write_text(f"hair_color: '{colour}'\n")
    refused(
        home, "character", "new", "A", "--prompt", "p", "--sheet", str(sheet), says="hair_color"
    )


@pytest.mark.parametrize("colour", ["#f0a04b", "#fa4", "teal", "dark brown", "rgb(240, 160, 75)"])
def test_colours_people_write_are_accepted(colour: str) -> None:
    assert ModelSheet(hair_color=colour).hair_color == colour


# ---------------------------------------------------------------- images


def test_decompression_bombs_are_refused_in_one_line(mia: Path, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(20_000, 20_000))
    refused(mia, "character", "import", "X", str(bomb), says="megapixels")
    refused(mia, "shot", "--pose", "p", "--ref", str(bomb), says="megapixels")
    big = tmp_path / "big.png"
    big.write_bytes(png_header(9_800, 9_800))  # 96 megapixels: used to print Pillow's warning
    outcome = refused(mia, "character", "import", "Y", str(big), says="9800x9800")
    assert "DecompressionBomb" not in outcome.stderr


def test_endless_image_files_are_refused(mia: Path, tmp_path: Path) -> None:
    refused(mia, "character", "import", "X", "/dev/zero", says="regular file")
    refused(mia, "shot", "--pose", "p", "--ref", "/dev/zero", says="regular file")
    fifo = tmp_path / "picture.png"
    os.mkfifo(fifo)
    refused(mia, "character", "import", "X", str(fifo), says="pipe")
    refused(mia, "shot", "--pose", "p", "--ref", str(fifo), says="pipe")


def test_too_many_refs_store_nothing(mia: Path, tmp_path: Path) -> None:
    from PIL import Image as PILImage

    ref = tmp_path / "ref.png"
    PILImage.new("RGB", (8, 8), (10, 20, 30)).save(ref)
    args = [a for _ in range(17) for a in ("--ref", str(ref))]
    refused(mia, "shot", "--pose", "p", *args, says="at most 16")


def test_a_broken_image_is_refused(mia: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(png_header(64, 64)[:30])
    refused(mia, "character", "import", "X", str(broken), says="not a readable image")


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    "args",
    [
        ("show", HUGE),
        ("show", f"-{HUGE}"),
        ("show", "0"),
        ("retry", HUGE),
        ("shot", "--from", HUGE),
        ("session", "show", HUGE),
        ("character", "show", HUGE),
    ],
)
def test_ids_no_row_can_have_are_not_found(mia: Path, args: tuple[str, ...]) -> None:
    refused(mia, *args)


@pytest.mark.parametrize("amount", ["nan", "inf", "-1"])
def test_max_cost_must_be_a_finite_amount(mia: Path, amount: str) -> None:
    refused(mia, "shot", "--pose", "p", "--max-cost", amount, says="--max-cost")


def test_library_ids_past_64_bits_are_not_found(studio: Studio) -> None:
    with pytest.raises(NotFoundError):
        studio.image(10**30)
    with pytest.raises(NotFoundError):
        studio.session(str(10**30))
    with pytest.raises(NotFoundError):
        studio.character(10**30)


# ---------------------------------------------------------------- text


def test_control_characters_are_refused_the_same_everywhere(mia: Path, studio: Studio) -> None:
    refused(mia, "shot", "--pose", "a\x1b[2Jb", says="control character")
    refused(mia, "character", "new", "Evil\x1b]0;pwned\x07", "--prompt", "p", says="U+001B")
    refused(mia, "session", "new", "mia", "--title", "t\x1b[2J", says="control character")
    with pytest.raises(InputError, match=r"U\+0000"):
        ShotRequest.checked(pose="a\0b")
    with pytest.raises(UsageError, match="control character"):
        studio.create_character("Nul", prompt="a\0b", provider="preview")
    assert [c.slug for c in studio.characters()] == ["mia"]


def test_newlines_and_tabs_stay_welcome_in_prompts(mia: Path) -> None:
    assert run_cli(mia, "shot", "line one\n\tline two").code == 0


def test_escape_sequences_in_stored_names_are_shown_not_obeyed(mia: Path) -> None:
    import sqlite3

    with sqlite3.connect(mia / "onmodel.db") as db:  # as an older onmodel may have stored it
        db.execute("UPDATE character SET name = 'Ev' || char(27) || ']0;pwned' || char(7) || 'il'")
        db.execute("UPDATE image SET request = json_object('pose', 'x' || char(27) || '[2J')")
        db.execute("UPDATE image SET prompt = 'Q' || char(27) || ']0;PWNED' || char(7)")
    for args in (("character", "list"), ("tree",), ("show", "2"), ("character", "show", "mia")):
        outcome = run_cli(mia, *args)
        assert outcome.code == 0, outcome
        assert "\x1b" not in outcome.stdout and "\x07" not in outcome.stdout
    assert "\\x1b]0;pwned\\x07" in run_cli(mia, "character", "list").stdout


# ---------------------------------------------------------------- session defaults


@pytest.mark.parametrize(
    ("options", "says"),
    [(["--size", "banana"], "banana"), (["--quality", "ultra"], "ultra")],
)
def test_session_defaults_are_checked_when_set(mia: Path, options: list[str], says: str) -> None:
    refused(mia, "session", "new", "mia", *options, says=says)


# ---------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    "args",
    [
        ("shot", "--max-cost", "abc"),
        ("show", "-1"),
        ("export", "--only", "junk"),
        ("nosuchcommand",),
        ("show",),
    ],
)
def test_usage_errors_are_one_line(mia: Path, args: tuple[str, ...]) -> None:
    outcome = refused(mia, *args)
    assert "╭" not in outcome.stderr and "Usage:" not in outcome.stderr


def test_bare_onmodel_still_shows_its_help(home: Path) -> None:
    outcome = run_cli(home)
    assert outcome.code == 2
    assert "character" in outcome.stdout and "shot" in outcome.stdout


# ---------------------------------------------------------------- races


def _cli(home: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["ONMODEL_HOME"] = str(home)
    return subprocess.Popen(
        [sys.executable, "-m", "onmodel", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_concurrent_sessions_of_one_title_each_get_a_free_name(mia: Path) -> None:
    runs = [_cli(mia, "session", "new", "mia", "--title", "Race", "--json") for _ in range(8)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in runs]
    assert [code for code, _, err in results] == [0] * 8, [err for _, _, err in results]
    listed = run_cli(mia, "session", "list")
    slugs = {f"race-{n}" for n in range(2, 9)} | {"race"}
    assert all(slug in listed.stdout for slug in slugs), listed.stdout


def test_concurrent_characters_of_one_name_make_one_character(home: Path) -> None:
    run_cli(home, "db", "upgrade")
    runs = [_cli(home, "character", "new", "Same", "--prompt", "a girl") for _ in range(8)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in runs]
    assert sorted(code for code, _, _ in results) == [0] + [2] * 7, results
    for code, _, err in results:
        if code:
            assert err.strip().startswith("error: a character named 'same' already exists"), err
    assert snapshot(home)[0][:3] == (1, 0, 1)  # one character, one anchor, nothing else


# ---------------------------------------------------------------- the library is typed too


def test_library_refusals_are_typed(studio: Studio, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(20_000, 20_000))
    with pytest.raises(InvalidImageError):
        studio.import_character("Bomb", bomb)
    with pytest.raises(UsageError):
        studio.create_character("Big", prompt="p", params={"size": "banana"}, provider="preview")
    assert studio.characters() == []


def test_a_shot_refused_after_its_refs_were_read_stores_none_of_them(
    mia: Path, tmp_path: Path
) -> None:
    from PIL import Image as PILImage

    ref = tmp_path / "ref.png"
    PILImage.new("RGB", (8, 8), (40, 50, 60)).save(ref)
    refused(mia, "shot", "--pose", "p", "--ref", str(ref), "--size", "banana", says="banana")
    refused(mia, "shot", "--pose", "p", "--ref", str(ref), "--quality", "ultra", says="ultra")
    assert run_cli(mia, "shot", "--pose", "p", "--ref", str(ref)).code == 0


def test_the_user_s_own_tables_are_read_with_bounds(mia: Path) -> None:
    prices = mia / "prices.yaml"
    prices.write_text("models:\n  gpt-image-2:\n    image_output: '1e999999999'\n")
    args = ("shot", "--dry-run", "--provider", "openai-images", "--pose", "p", "--max-cost", "5")
    refused(mia, *args, says="prices.yaml")
    prices.unlink()
    (mia / "models.yaml").symlink_to("/dev/zero")  # read whole, it would never end
    refused(mia, "shot", "--dry-run", "--pose", "p", says="regular file")


def test_line_breaks_and_direction_overrides_stay_out_of_names(mia: Path) -> None:
    refused(mia, "character", "new", "Line\u2028Break", "--prompt", "p", says="U+2028")
    refused(mia, "character", "new", "Evil\u202egnp.exe", "--prompt", "p", says="U+202E")
    refused(mia, "shot", "--pose", "a\rb", says="U+000D")


def test_serve_on_a_busy_or_impossible_port_says_so(home: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        outcome = refused(home, "serve", "--port", port, code=2, says="cannot listen")
        assert "--port 0" in outcome.stderr
    for impossible in ("99999", "-1"):
        assert_refused_cleanly(run_cli(home, "serve", "--port", impossible))


def test_a_shot_list_with_a_manual_provider_is_refused_when_checked(
    mia: Path, tmp_path: Path
) -> None:
    shots = tmp_path / "week.yaml"
    shots.write_text("shots:\n  - pose: waving\n    provider: chatgpt\n")
    for extra in (("--dry-run",), ()):
        outcome = refused(mia, "batch", "run", str(shots), *extra, says="manual steps")
        assert "week.yaml:2" in outcome.stderr
    assert not (mia / "locks").exists() or not any((mia / "locks").glob("session-*"))


@pytest.mark.parametrize(
    "args",
    [
        ("db", "check", "--grace-minutes", "inf"),
        ("db", "check", "--grace-minutes", "1e20", "--fix"),
        ("db", "check", "--grace-minutes", "nan"),
    ],
)
def test_db_check_refuses_grace_periods_no_clock_can_hold(
    home: Path, args: tuple[str, ...]
) -> None:
    refused(home, *args)


def test_a_rate_so_slow_it_never_ends_is_refused(mia: Path, tmp_path: Path) -> None:
    shots = tmp_path / "week.yaml"
    shots.write_text("shots:\n  - pose: waving\n")
    refused(mia, "batch", "run", str(shots), "--rpm", "1e-300", says="--rpm")


def test_image_files_the_apis_cannot_take_are_named_plainly(mia: Path, tmp_path: Path) -> None:
    from PIL import Image as PILImage

    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    outcome = refused(mia, "character", "import", "X", str(text), says="not a readable image")
    assert "BytesIO" not in outcome.stderr
    gif = tmp_path / "moving.gif"
    PILImage.new("RGB", (8, 8)).save(gif)
    refused(mia, "shot", "--pose", "p", "--ref", str(gif), says="use png, jpeg or webp")


@pytest.mark.parametrize("length", [240, 300])
def test_export_to_a_very_long_folder_name_is_one_line(
    mia: Path, tmp_path: Path, length: int
) -> None:
    outcome = run_cli(mia, "export", "--to", str(tmp_path / ("e" * length)))
    if length > 250:
        assert_refused_cleanly(outcome)
        assert "too long" in outcome.stderr
    else:  # a long but valid name works: the temporary folders are named apart from it
        assert outcome.code == 0, outcome
        assert (tmp_path / ("e" * length) / "series.json").is_file()
