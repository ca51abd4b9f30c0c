"""Every command through a real subprocess, as a user types it."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image as PILImage

from onmodel.blobs import sha256_file


def run(home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["ONMODEL_HOME"] = str(home)
    env["COLUMNS"] = "200"
    result = subprocess.run(
        [sys.executable, "-m", "onmodel", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def run_json(home: Path, *args: str) -> object:
    return json.loads(run(home, *args, "--json").stdout)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.mark.slow  # about 7 s: a dozen CLI processes
def test_a_whole_session_from_the_command_line(home: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.yaml"
    sheet.write_text("hair_color: '#d22b2b'\neye_color: green\nmust_keep: [star hair clip]\n")
    created = run_json(home, "character", "new", "Rin", "--prompt", "a girl", "--sheet", str(sheet))
    assert isinstance(created, dict) and created["slug"] == "rin"
    assert created["sheet"]["must_keep"] == ["star hair clip"]

    listed = run_json(home, "character", "list")
    assert [c["slug"] for c in listed] == ["rin"]  # type: ignore[union-attr, index]
    shown = run_json(home, "character", "show", "rin")
    assert shown["anchor"]["kind"] == "anchor"  # type: ignore[index, call-overload]
    assert "Rin" in run(home, "character", "show", "rin").stdout

    out = run(home, "session", "new", "rin", "--title", "Rin's day").stdout
    assert "rin-s-day" in out and "current session" in out
    sessions = run_json(home, "session", "list")
    assert sessions[0]["current"] is True  # type: ignore[index]

    dry = run(home, "shot", "--pose", "playing guitar", "--dry-run").stdout
    assert "Pose: playing guitar" in dry and "star hair clip" in dry
    assert run_json(home, "session", "show")["images"] == []  # type: ignore[index]

    first = run_json(home, "shot", "--expression", "crying")
    second = run_json(home, "shot", "--session", "rin-s-day", "--pose", "playing guitar")
    branch = run_json(home, "shot", "--outfit", "sportswear", "--from", str(first["id"]))  # type: ignore[index]
    assert second["parent_id"] == first["id"]  # type: ignore[index]
    assert branch["parent_id"] == first["id"]  # type: ignore[index]

    shown_image = run_json(home, "show", str(second["id"]))  # type: ignore[index]
    assert isinstance(shown_image, dict)
    assert shown_image["lineage"] == [created["anchor_image_id"], first["id"], second["id"]]  # type: ignore[index]
    assert "Pose: playing guitar" in shown_image["prompt"]
    assert sha256_file(Path(shown_image["file"]["path"])) == shown_image["file"]["sha256"]
    assert "playing guitar" in run(home, "show", str(second["id"])).stdout  # type: ignore[index]

    tree = run_json(home, "tree")  # every image once, with its parent
    assert isinstance(tree, list) and tree[0]["kind"] == "anchor"
    (crying,) = [e for e in tree if e["parent_id"] == tree[0]["id"]]
    children = [e["id"] for e in tree if e["parent_id"] == crying["id"]]
    assert children == [second["id"], branch["id"]]  # type: ignore[index]
    text_tree = run(home, "tree", "rin-s-day").stdout
    assert "crying" in text_tree and "sportswear" in text_tree and "head" in text_tree

    run(home, "session", "new", "rin", "--title", "Other")
    assert "current session: rin-s-day" in run(home, "session", "use", "rin-s-day").stdout
    assert run_json(home, "session", "show")["slug"] == "rin-s-day"  # type: ignore[index]


def test_import_a_chatgpt_image(home: Path, tmp_path: Path) -> None:
    picture = tmp_path / "chatgpt.png"
    buffer = io.BytesIO()
    PILImage.new("RGB", (32, 32), (200, 10, 10)).save(buffer, "PNG")
    picture.write_bytes(buffer.getvalue())
    out = run_json(
        home,
        "character",
        "import",
        "Kai",
        str(picture),
        "--prompt",
        "a boy",
        "--gen-id",
        "5EutQh3bm4uwHr4F",
        "--revised-prompt",
        "A boy in a red cap",
    )
    assert isinstance(out, dict)
    anchor = run_json(home, "show", str(out["anchor_image_id"]))
    assert anchor["gen_id"] == "5EutQh3bm4uwHr4F"  # type: ignore[index]
    assert anchor["revised_prompt"] == "A boy in a red cap"  # type: ignore[index]


def test_db_and_templates_commands(home: Path) -> None:
    assert "upgraded from empty" in run(home, "db", "upgrade").stdout
    assert "already at the newest schema" in run(home, "db", "upgrade").stdout
    current = run_json(home, "db", "current")
    assert isinstance(current, dict) and current["up_to_date"] is True
    assert "(head)" in run(home, "db", "current").stdout
    names = [t["name"] for t in run_json(home, "templates", "list")]  # type: ignore[union-attr]
    assert {"prompts/anchor.j2", "prompts/shot.j2", "prompts/primer.j2"} <= set(names)
    assert "Do not redesign" in run(home, "templates", "show", "shot").stdout
    paths = run(home, "templates", "path").stdout
    assert f"user: {home / 'templates'}" in paths and "packaged:" in paths


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["character", "show", "nobody"], 2, "no character 'nobody'"),
        (["character", "new", "!!!", "--prompt", "x"], 2, "cannot make a name"),
        (["character", "new", "Ok", "--prompt", "x", "--slug", "Bad Slug"], 2, "invalid slug"),
        (["session", "new", "nobody"], 2, "no character"),
        (["shot", "--pose", "waving"], 2, "no current session"),
        (["show", "999"], 2, "no image 999"),
        (["show", "abc"], 2, "not an image id"),
        (["character", "import", "Kai", "/nonexistent.png"], 2, "no such file"),
        (["templates", "show", "nope"], 2, "template 'nope' not found"),
        (["session", "use", "nope"], 2, "no session 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_a_usage_exit_code(
    home: Path, args: list[str], code: int, message: str
) -> None:
    result = run(home, *args, ok=False)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_duplicate_and_broken_files_and_missing_template_variables(
    home: Path, tmp_path: Path
) -> None:
    run(home, "character", "new", "Rin", "--prompt", "a girl")
    dup = run(home, "character", "new", "Rin", "--prompt", "again", ok=False)
    assert dup.returncode == 2 and "already exists" in dup.stderr
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"GIF89a broken")
    bad = run(home, "character", "import", "Kai", str(broken), ok=False)
    assert bad.returncode == 2 and "not a readable image" in bad.stderr
    (home / "templates" / "prompts").mkdir(parents=True)
    (home / "templates" / "prompts" / "shot.j2").write_text("{{ character.name }}\n{{ mood }}\n")
    run(home, "session", "new", "rin")
    missing = run(home, "shot", "--pose", "waving", ok=False)
    assert missing.returncode == 2
    assert "prompts/shot.j2" in missing.stderr and "line 2" in missing.stderr
    assert "'mood'" in missing.stderr
    assert run_json(home, "session", "show")["images"] == []  # type: ignore[index]


def test_a_database_newer_than_the_code_is_a_failure_exit(home: Path) -> None:
    import sqlite3

    run(home, "db", "upgrade")
    with sqlite3.connect(home / "onmodel.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    result = run(home, "character", "list", ok=False)
    assert result.returncode == 1
    assert "newer version" in result.stderr and "Traceback" not in result.stderr


def test_demo_reproduces_the_seed_series_offline(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    out = run(tmp_path / "unused", "demo", "--dir", str(target)).stdout
    for label in ("crying", "guitar", "selfie", "computer", "sportswear", "city street"):
        assert label in out
    assert str(target) in out
    import sqlite3

    with sqlite3.connect(target / "onmodel.db") as conn:
        rows = conn.execute("SELECT id, parent_id, prompt, sha256, format FROM image").fetchall()
    assert len(rows) >= 7
    for _id, _parent, prompt, sha, fmt in rows:
        assert prompt
        path = target / "blobs" / sha[:2] / sha[2:4] / f"{sha}.{'png' if fmt == 'png' else fmt}"
        assert sha256_file(path) == sha
    # the roots are the four anchors: Mia's (the series grows from it), Rin's, Max's, the bedroom's
    assert sum(1 for r in rows if r[1] is None) == 4


def test_the_demo_ends_with_a_check_report_in_which_a_drifted_take_is_caught_and_retaken(
    tmp_path: Path,
) -> None:
    out = run(tmp_path / "unused", "demo", "--dir", str(tmp_path / "demo")).stdout
    report = out[out.index("check report") :]
    shots = [line for line in report.splitlines() if line.startswith("  #")]
    assert len(shots) == 7 and all("on model" in line for line in shots), report
    # the cast shot is checked too, member by member, the bedroom not (it is the place)
    assert "Mia on model 100 · Rin on model 100 · Max on model 100" in shots[-1], report
    assert "not checked: Mia's bedroom (set)" in report
    retake = report[report.index("retake") :]
    assert "take 1/3  drifted" in retake and "hair colour: drifted" in retake
    assert "take 2/3  on model" in retake
    assert re.search(
        r"picked #\d+ \(waving, beach at sunset · take 2/3, score \d+, on model\)", retake
    )
