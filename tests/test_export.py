"""``onmodel export``: byte-identical files under readable names, full provenance in
series.json, and an index.html that needs no server and no network."""

from __future__ import annotations

import inspect
import io
import json
import os
import random
import re
import subprocess
import sys
import weakref
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

import onmodel.export
import onmodel.presentation
import onmodel.thumbnails
from onmodel.blobs import BlobIntegrityError, sha256_bytes, sha256_file
from onmodel.cli.app import app
from onmodel.errors import UsageError
from onmodel.export import CARDS_PER_PAGE, ExportError, export_session
from onmodel.handles import Session
from onmodel.lineage import LineageIndex, with_images
from onmodel.presentation import WHOLE_LINEAGE
from onmodel.status import ImageStatus
from onmodel.store.database import transaction
from onmodel.store.models import ImageRow, SessionRow
from onmodel.store.rows import insert_rows, update_row
from onmodel.studio import Studio
from onmodel.thumbnails import CARD_SIZE, MINI_SIZE, Thumbnailer
from test_web_fixtures import Series

# Anything that would make a browser reach the network from the exported page.
EXTERNAL = re.compile(
    r"""(?:src|href|action|poster|srcset)\s*=\s*["']?\s*(?:https?:|//)|url\(\s*["']?\s*(?:https?:|//)|@import""",
    re.IGNORECASE,
)

pytest_plugins = ["test_web_fixtures"]  # its fixtures: controls, series, served


def lineage_links(html: str) -> dict[int, int | None]:
    """``data-image-id``/``data-parent-id`` of every node in the lineage view."""
    start = html.index('<div class="lineage"')
    nodes = re.findall(
        r'<li class="node[^"]*" data-image-id="(\d+)" data-parent-id="(\d*)"', html[start:]
    )
    return {int(i): int(p) if p else None for i, p in nodes}


def test_export_copies_every_image_byte_for_byte_under_readable_names(
    studio: Studio, series: Series, tmp_path: Path
) -> None:
    result = export_session(studio, series.session, tmp_path / "out")
    names = [f.name for f in result.files]
    assert names == [
        "000-anchor.png",
        "001-crying.png",
        "002-playing-guitar.png",
        "003-taking-a-selfie-with-a-dog.png",
    ]
    for exported in result.files:
        image = studio.image(exported.image_id)
        copy = tmp_path / "out" / exported.name
        assert sha256_file(copy) == image.sha256 == exported.sha256
        assert image.path is not None and copy.read_bytes() == image.path.read_bytes()
    assert result.images == 5 and result.failed == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [*names, "index.html", "series.json"]
    )


def ancestry(data: dict[str, Any], image_id: int) -> list[int]:
    """An image's ids back to the root, as a reader derives them from ``series.json``: from
    ``tree`` (the whole lineage, exported or not)."""
    parent_of = {c: int(p) for p, children in data["tree"]["children"].items() for c in children}
    found = [image_id]
    while found[-1] in parent_of:
        found.append(parent_of[found[-1]])
    return found[::-1]


def test_series_json_holds_full_provenance_and_lineage(
    studio: Studio, series: Series, tmp_path: Path
) -> None:
    result = export_session(studio, series.session, tmp_path / "out")
    data = json.loads((tmp_path / "out" / "series.json").read_text(encoding="utf-8"))
    assert data["format"] == "onmodel-series" and data["format_version"] == 2
    assert data["character"]["slug"] == "rin" and data["session"]["slug"] == series.session
    assert data["character"]["sheet"]["hair_color"] == "#d22b2b"
    records = {r["id"]: r for r in data["images"]}
    assert data["images"][0]["id"] == series.anchor
    assert set(records) == set(series.parents) and len(data["images"]) == len(records)
    for image_id, parent in series.parents.items():
        record = records[image_id]
        assert record["parent_id"] == parent
        assert "lineage" not in record and "children" not in record  # derivable: format 2
        assert record == {**studio.image(image_id).to_dict(), **record}  # all show --json has
        assert ancestry(data, image_id) == [i.id for i in studio.image(image_id).lineage()]
    assert records[series.crying]["exported_as"] == "001-crying.png"
    assert records[series.crying]["file"]["path"] == "001-crying.png"
    failed = records[series.failed]
    assert failed["status"] == "failed" and failed["exported_as"] is None
    assert failed["error"]["type"] == "moderation"
    assert failed["error"]["code"] == "moderation_blocked"
    assert data["tree"]["root_image_id"] == series.anchor
    assert data["tree"]["children"] == {
        str(series.anchor): [series.crying],
        str(series.crying): [series.guitar, series.branch],
        str(series.guitar): [series.failed],
    }
    assert data["tree"]["exported"] == sorted(series.parents)
    assert data["files"]["001-crying.png"] == studio.image(series.crying).sha256
    assert data["pages"] == {"index.html": sha256_file(tmp_path / "out" / "index.html")}
    assert result.pages == ["index.html"]


def test_index_html_is_a_self_contained_contact_sheet(
    studio: Studio, series: Series, tmp_path: Path
) -> None:
    export_session(studio, series.session, tmp_path / "out")
    html = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert EXTERNAL.search(html) is None
    assert "<script" not in html  # nothing to run, nothing to fetch
    assert "<style>" in html and 'rel="stylesheet"' not in html
    # anchor first, then every shot with its request, prompt (expandable), model and cost
    assert html.index(f'id="image-{series.anchor}"') < html.index(f'id="image-{series.crying}"')
    for image_id in series.parents:
        image = studio.image(image_id)
        assert f'data-image-id="{image_id}"' in html
        if image.prompt:
            assert re.search(r"<details class=\"prompt\"><summary>Prompt</summary><pre>", html)
    assert "<dt>expression</dt><dd>crying</dd>" in html
    assert "preview / " in html and "free" in html
    # thumbnails are embedded, originals are linked relatively
    assert html.count('src="data:image/') >= 8
    for name in ("000-anchor.png", "001-crying.png", "003-taking-a-selfie-with-a-dog.png"):
        assert f'href="{name}"' in html
    # a failed shot is shown with its error
    assert "Your request was rejected by the safety system." in html
    assert "moderation_blocked" in html
    assert lineage_links(html) == series.parents


def test_revised_prompt_gen_id_and_cost_are_shown(
    studio: Studio, series: Series, tmp_path: Path
) -> None:
    with transaction(studio.engine) as db:
        row = db.get(ImageRow, series.guitar)
        assert row is not None
        row.revised_prompt = "A girl with red hair plays an acoustic guitar."
        row.gen_id = "gen_abc123"
        row.cost_usd = "0.0421"
        db.add(row)
    export_session(studio, series.session, tmp_path / "out")
    html = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "A girl with red hair plays an acoustic guitar." in html
    assert "<code>gen_abc123</code>" in html
    assert "$0.0421" in html


CHIP = re.compile(r'<span class="chip(?: failed)?"><strong>([^<]+)</strong> ([^<]+)</span>')
COST_CHIP = re.compile(r'<span class="chip">cost <strong>([^<]+)</strong></span>')


def chips(html: str) -> dict[str, str]:
    """The masthead's totals as a reader sees them: ``{"images": "4", "cost": "$0.05"...}``."""
    found = {label: value for value, label in CHIP.findall(html)}
    cost = COST_CHIP.search(html)
    assert cost is not None
    return {**found, "cost": cost.group(1)}


def test_exported_totals_say_what_the_session_page_says(
    studio: Studio, series: Series, tmp_path: Path
) -> None:
    """One way to total a session: the export adds its cards up as it writes them
    (``presentation.Totals``), the session page starts from the database's counts; a reader
    sees the same counts (the anchor's card included) and the same cost, an unknown cost
    counted as unknown, never as free."""
    from onmodel.web.app import GalleryApp
    from test_web_long import get

    studio.annotate_image(series.crying, starred=True)
    with transaction(studio.engine) as db:
        for image_id, cost in ((series.crying, "0.0421"), (series.guitar, None)):
            row = db.get(ImageRow, image_id)
            assert row is not None
            row.cost_usd = cost
            db.add(row)
    export_session(studio, series.session, tmp_path / "out")
    exported = chips((tmp_path / "out" / "index.html").read_text(encoding="utf-8"))
    assert exported == {
        "images": "4",
        "failed": "1",
        "★": "1",
        # the shot above; the failure was the free preview's, recorded at 0 (a billed API's
        # failure is unknown unless its API refused it before answering)
        "cost": "$0.0421 + 1 unknown",
    }
    page = get(GalleryApp(studio), f"/sessions/{series.session}").text
    served = chips(page[: page.index('<div class="layout">')])
    assert served == {key: value for key, value in exported.items() if key != "★"}


def test_exported_cards_show_their_tags_and_leave_hidden_images_out(
    studio: Studio, series: Series, tmp_path: Path
) -> None:
    studio.tag_image(series.crying, ["keeper", "<b>bold</b>"])
    studio.hide_images([series.branch])
    export_session(studio, series.session, tmp_path / "out")
    html = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    crying = html[html.index(f'id="image-{series.crying}"') :]
    crying = crying[: crying.index("</article>")]
    assert '<li class="tag">keeper</li>' in crying
    assert '<li class="tag">&lt;b&gt;bold&lt;/b&gt;</li>' in crying
    assert "<form" not in crying  # a contact sheet has no buttons
    assert f'id="image-{series.branch}"' not in html


def test_user_text_is_escaped_in_html_but_prompts_stay_raw(
    studio: Studio, series: Series, tmp_path: Path
) -> None:
    studio.annotate_image(series.crying, note='<script>alert("x")</script> & <b>bold</b>')
    export_session(studio, series.session, tmp_path / "out")
    html = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    # the prompt composer must not escape: a prompt is text sent to a model, not HTML
    cat = studio.create_character("Tom", prompt="a grey cat & a <small> mouse")
    assert cat.anchor is not None and "a grey cat & a <small> mouse" in cat.anchor.prompt


def test_only_starred_keeps_the_anchor_and_links_to_the_nearest_ancestor(
    studio: Studio, series: Series, tmp_path: Path
) -> None:
    studio.annotate_image(series.guitar, starred=True)
    result = export_session(studio, series.session, tmp_path / "out", only="starred")
    assert [f.name for f in result.files] == ["000-anchor.png", "001-playing-guitar.png"]
    html = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    # crying was filtered out: guitar hangs from the anchor in the view...
    assert lineage_links(html) == {series.anchor: None, series.guitar: series.anchor}
    assert f"parent #{series.crying} not shown" in html
    # ...while series.json keeps the true provenance
    data = json.loads((tmp_path / "out" / "series.json").read_text(encoding="utf-8"))
    guitar = next(r for r in data["images"] if r["id"] == series.guitar)
    assert guitar["parent_id"] == series.crying
    assert ancestry(data, series.guitar) == [series.anchor, series.crying, series.guitar]
    assert data["tree"]["exported"] == [series.anchor, series.guitar]
    assert data["only"] == "starred"


def test_zip_holds_the_folder_byte_for_byte(studio: Studio, series: Series, tmp_path: Path) -> None:
    result = export_session(studio, series.session, tmp_path / "rin", make_zip=True)
    assert result.zip_path == tmp_path / "rin.zip"
    with zipfile.ZipFile(result.zip_path) as bundle:
        members = set(bundle.namelist())
        assert {"rin/index.html", "rin/series.json", "rin/001-crying.png"} <= members
        for exported in result.files:
            data = bundle.read(f"rin/{exported.name}")
            assert sha256_bytes(data) == exported.sha256
            assert bundle.getinfo(f"rin/{exported.name}").compress_type == zipfile.ZIP_STORED


def test_export_refuses_a_foreign_folder_and_replaces_an_earlier_export(
    studio: Studio, series: Series, tmp_path: Path
) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.docx").write_text("precious")
    with pytest.raises(UsageError, match="not empty"):
        export_session(studio, series.session, foreign)
    assert (foreign / "thesis.docx").read_text() == "precious"

    target = tmp_path / "out"
    export_session(studio, series.session, target)
    (target / "mine.txt").write_text("kept")
    studio.annotate_image(series.branch, starred=True)
    result = export_session(studio, series.session, target, only="starred")
    assert result.kept == ["mine.txt"]
    names = sorted(p.name for p in target.iterdir())
    assert names == [
        "000-anchor.png",
        "001-taking-a-selfie-with-a-dog.png",
        "index.html",
        "mine.txt",
        "series.json",
    ]


def test_export_thumbnails_are_cached_by_digest_and_size(
    studio: Studio, series: Series, tmp_path: Path
) -> None:
    export_session(studio, series.session, tmp_path / "a")
    sha = studio.image(series.crying).sha256
    assert sha is not None
    cached = sorted(p.name for p in (studio.paths.thumbnails / sha[:2]).iterdir())
    assert any(name.startswith(f"{sha}-480.") for name in cached)
    assert any(name.startswith(f"{sha}-96.") for name in cached)
    stamp = {p: p.stat().st_mtime_ns for p in studio.paths.thumbnails.rglob("*") if p.is_file()}
    export_session(studio, series.session, tmp_path / "b")
    again = {p: p.stat().st_mtime_ns for p in studio.paths.thumbnails.rglob("*") if p.is_file()}
    assert again == stamp  # served from the cache, not re-made


def test_cli_export(studio: Studio, series: Series, tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "cli"
    result = runner.invoke(app, ["export", series.session, "--to", str(target), "--zip"])
    assert result.exit_code == 0, result.output
    assert "4 image file(s), 1 failed shot(s) listed" in result.output
    assert (target / "index.html").is_file() and (tmp_path / "cli.zip").is_file()

    result = runner.invoke(app, ["export", "--to", str(tmp_path / "json"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["images"] == 5  # the current session by default

    result = runner.invoke(app, ["export", "--to", str(tmp_path / "x"), "--only", "bogus"])
    assert result.exit_code == 2


def test_cli_export_refusal_is_one_line_and_exit_2(series: Series, tmp_path: Path) -> None:
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "x.txt").write_text("x")
    done = subprocess.run(
        [sys.executable, "-m", "onmodel", "export", "--to", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under ``folder``: a file's bytes, a symlink's target, a folder's mark."""
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            found[key] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            found[key] = "<dir>"
        else:
            found[key] = path.read_bytes()
    return found


def hidden(parent: Path) -> list[str]:
    """Temporary folders or zips an export left beside its target."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def blob_of(studio: Studio, image_id: int) -> Path:
    path = studio.image(image_id).path
    assert path is not None
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real entry point, so the one-line error and the exit code are the user's."""
    return subprocess.run(
        [sys.executable, "-m", "onmodel", *args], capture_output=True, text=True, check=False
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int) -> None:
    assert done.returncode == code, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert "unexpected" not in done.stderr and "Traceback" not in done.stderr


def test_a_missing_blob_names_the_image_and_writes_nothing(
    studio: Studio, series: Series, tmp_path: Path
) -> None:
    blob_of(studio, series.guitar).unlink()
    parent = tmp_path / "exports"
    parent.mkdir()
    with pytest.raises(BlobIntegrityError, match=rf"image {series.guitar} \(002-playing-guitar"):
        export_session(studio, series.session, parent / "out", make_zip=True)
    assert list(parent.iterdir()) == []  # no folder, no zip, no temporary leftovers

    done = run_cli("export", series.session, "--to", str(parent / "out"))
    assert_one_line_error(done, 1)
    assert f"image {series.guitar}" in done.stderr and "missing" in done.stderr
    assert list(parent.iterdir()) == []


def test_a_damaged_blob_leaves_the_earlier_export_and_zip_exactly_as_they_were(
    studio: Studio, series: Series, tmp_path: Path
) -> None:
    target = tmp_path / "out"
    export_session(studio, series.session, target, make_zip=True)
    (target / "mine.txt").write_text("kept")
    before, zip_before = snapshot(target), (tmp_path / "out.zip").read_bytes()
    blob = blob_of(studio, series.branch)
    original = blob.read_bytes()
    blob.chmod(0o644)
    blob.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))

    with pytest.raises(BlobIntegrityError, match=rf"image {series.branch} .*damaged"):
        export_session(studio, series.session, target, make_zip=True)
    assert snapshot(target) == before
    assert (tmp_path / "out.zip").read_bytes() == zip_before
    assert hidden(tmp_path) == []

    done = run_cli("export", series.session, "--to", str(target))
    assert_one_line_error(done, 1)
    assert f"image {series.branch}" in done.stderr and "damaged" in done.stderr
    assert snapshot(target) == before

    blob.write_bytes(original)  # once repaired, the rerun accepts the folder
    assert export_session(studio, series.session, target).kept == ["mine.txt"]


def test_a_failed_swap_puts_the_earlier_export_back(
    studio: Studio, series: Series, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out"
    export_session(studio, series.session, target)
    (target / "mine.txt").write_text("kept")
    before = snapshot(target)
    real_rename = os.rename

    def rename(source: Path, destination: Path) -> None:
        if ".onmodel-new" in str(source):  # the finished export moving into place
            raise PermissionError(13, "Permission denied", str(destination))
        real_rename(source, destination)

    monkeypatch.setattr(onmodel.export.os, "rename", rename)
    with pytest.raises(ExportError, match=r"could not export to .*Permission denied"):
        export_session(studio, series.session, target, only="starred")
    assert snapshot(target) == before
    assert hidden(tmp_path) == []


def test_reexport_keeps_the_users_files_folders_and_links_and_says_so(
    studio: Studio, series: Series, tmp_path: Path
) -> None:
    target = tmp_path / "out"
    export_session(studio, series.session, target)
    (target / "notes").mkdir()
    (target / "notes" / "todo.txt").write_text("mine")
    (target / "link.png").symlink_to(blob_of(studio, series.crying))
    # an exported image the user edited, which the new (starred-only) export does not write
    (target / "002-playing-guitar.png").write_bytes(b"retouched")

    result = export_session(studio, series.session, target, only="starred")
    assert result.kept == ["002-playing-guitar.png", "link.png", "notes"]
    assert (target / "notes" / "todo.txt").read_text() == "mine"
    assert (target / "link.png").is_symlink()
    assert (target / "002-playing-guitar.png").read_bytes() == b"retouched"
    assert not (target / "001-crying.png").exists()  # written by onmodel, unchanged: replaced
    assert hidden(tmp_path) == []

    done = run_cli("export", series.session, "--to", str(target), "--only", "starred", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["kept"] == ["002-playing-guitar.png", "link.png", "notes"]


def test_reexport_refuses_to_replace_a_file_the_user_changed(
    studio: Studio, series: Series, tmp_path: Path
) -> None:
    target = tmp_path / "out"
    export_session(studio, series.session, target)
    (target / "001-crying.png").write_bytes(b"retouched by hand")
    before = snapshot(target)
    with pytest.raises(UsageError, match=r"001-crying\.png was not written by an earlier export"):
        export_session(studio, series.session, target)
    assert snapshot(target) == before and hidden(tmp_path) == []

    assert_one_line_error(run_cli("export", series.session, "--to", str(target)), 2)
    assert snapshot(target) == before


def test_a_file_edited_while_exporting_is_left_aside_not_deleted(
    studio: Studio, series: Series, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onmodel.presentation import Pages

    target = tmp_path / "out"
    export_session(studio, series.session, target)
    real_render = Pages.render

    def render(pages: Pages, name: str, **context: Any) -> str:
        (target / "001-crying.png").write_bytes(b"retouched mid-export")
        return real_render(pages, name, **context)

    monkeypatch.setattr(Pages, "render", render)
    with pytest.raises(ExportError, match=r"changed while it ran; they are in .*onmodel-old"):
        export_session(studio, series.session, target)
    (aside,) = [tmp_path / name for name in hidden(tmp_path)]
    assert sorted(p.name for p in aside.iterdir()) == ["001-crying.png"]
    assert (aside / "001-crying.png").read_bytes() == b"retouched mid-export"
    assert sha256_file(target / "001-crying.png") == studio.image(series.crying).sha256


def test_a_planted_series_json_cannot_make_export_delete_anything(
    studio: Studio, series: Series, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not in the folder")
    target = tmp_path / "planted"
    target.mkdir()
    (target / "thesis.docx").write_text("precious")
    (target / "link.png").symlink_to(outside)
    digest = sha256_file(outside)
    planted = {
        "format": "onmodel-series",
        "files": {
            # true digests, so only the name rules and the blob store stand in the way
            "thesis.docx": sha256_file(target / "thesis.docx"),
            "link.png": digest,
            "../outside.txt": digest,
            str(outside): digest,
        },
    }
    (target / "series.json").write_text(json.dumps(planted))

    result = export_session(studio, series.session, target)
    assert result.kept == ["link.png", "thesis.docx"]
    assert (target / "thesis.docx").read_text() == "precious"
    assert (target / "link.png").is_symlink() and outside.read_text() == "not in the folder"
    assert json.loads((target / "series.json").read_text())["format_version"] == 2

    # a planted page, or a file under a name the export writes, is refused, not overwritten
    for name, data in (("index.html", b"<p>mine</p>"), ("000-anchor.png", b"mine")):
        folder = tmp_path / f"planted-{name}"
        folder.mkdir()
        (folder / name).write_bytes(data)
        manifest = {"format": "onmodel-series", "files": {name: sha256_bytes(data)}}
        if name == "index.html":
            manifest = {"format": "onmodel-series", "index_sha256": "0" * 64}
        (folder / "series.json").write_text(json.dumps(manifest))
        before = snapshot(folder)
        with pytest.raises(UsageError, match=rf"{re.escape(name)} was not written"):
            export_session(studio, series.session, folder)
        assert snapshot(folder) == before


def test_zip_replaces_only_onmodels_own_zip(studio: Studio, series: Series, tmp_path: Path) -> None:
    target = tmp_path / "rin"
    export_session(studio, series.session, target, make_zip=True)
    studio.annotate_image(series.guitar, starred=True)
    result = export_session(studio, series.session, target, only="starred", make_zip=True)
    assert result.zip_path is not None
    with zipfile.ZipFile(result.zip_path) as bundle:
        assert sorted(bundle.namelist()) == [
            "rin/000-anchor.png",
            "rin/001-playing-guitar.png",
            "rin/index.html",
            "rin/series.json",
        ]
    assert hidden(tmp_path) == []

    # a zip the user added a file to is theirs now
    with zipfile.ZipFile(result.zip_path, "a") as bundle:
        bundle.writestr("rin/extra.txt", "mine")
    changed = result.zip_path.read_bytes()
    with pytest.raises(UsageError, match=r"rin\.zip exists and was not written by onmodel"):
        export_session(studio, series.session, target, make_zip=True)
    assert result.zip_path.read_bytes() == changed


def test_zip_refuses_a_foreign_file_or_a_folder_before_writing_anything(
    studio: Studio, series: Series, tmp_path: Path
) -> None:
    foreign = tmp_path / "out.zip"
    foreign.write_bytes(b"someone else's archive")
    with pytest.raises(UsageError, match="not written by onmodel"):
        export_session(studio, series.session, tmp_path / "out", make_zip=True)
    assert foreign.read_bytes() == b"someone else's archive"
    assert not (tmp_path / "out").exists() and hidden(tmp_path) == []
    done = run_cli("export", series.session, "--to", str(tmp_path / "out"), "--zip")
    assert_one_line_error(done, 2)
    assert foreign.read_bytes() == b"someone else's archive"

    (tmp_path / "dir.zip").mkdir()
    with pytest.raises(UsageError, match=r"dir\.zip is a folder"):
        export_session(studio, series.session, tmp_path / "dir", make_zip=True)
    done = run_cli("export", series.session, "--to", str(tmp_path / "dir"), "--zip")
    assert_one_line_error(done, 2)
    assert not (tmp_path / "dir").exists() and hidden(tmp_path) == []


def test_a_filesystem_failure_is_one_line_not_a_traceback(series: Series, tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    done = run_cli("export", series.session, "--to", str(tmp_path / "file.txt" / "out"))
    assert_one_line_error(done, 1)
    assert "could not export" in done.stderr


def test_export_streams_images_and_thumbnails(
    studio: Studio, series: Series, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither every image nor every thumbnail is ever in memory at once.

    Images are copied in chunks (never read whole), and the page is rendered with placeholders
    that are replaced by one thumbnail at a time as the file is written.
    """
    from onmodel.handles import Image
    from onmodel.presentation import Pages

    def read_whole(image: Image) -> bytes:
        raise AssertionError(f"image {image.id} was read whole")

    rendered: list[Any] = []
    real_render = Pages.render

    def render(pages: Pages, name: str, **context: Any) -> str:
        rendered.append(context["session"])
        return real_render(pages, name, **context)

    monkeypatch.setattr(Image, "read_bytes", read_whole)
    monkeypatch.setattr(Pages, "render", render)
    studio.annotate_image(series.crying, note="onmodel-thumbnail-0 is just text")
    export_session(studio, series.session, tmp_path / "out")
    (view,) = rendered
    thumbs = [image.thumb for image in view.images if image.thumb]
    assert thumbs and not any(thumb.startswith("data:") for thumb in thumbs)
    html = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert html.count('src="data:image/') >= 8
    assert re.search(r"onmodel-thumbnail-[0-9a-f]{32}-", html) is None  # every one replaced
    assert "onmodel-thumbnail-0 is just text" in html  # user text is never taken for one


def test_a_long_chain_does_not_hit_the_recursion_limit() -> None:
    """A long series is a deep chain: walking, pruning and laying it out must not recurse."""
    depth = sys.getrecursionlimit() * 3
    whole = LineageIndex([(i, i - 1 if i else None) for i in range(depth)])
    assert whole.order() == list(range(depth))
    pruned = whole.prune(lambda image_id: image_id % 2 == 0)
    evens = list(range(0, depth, 2))
    assert pruned.order() == evens
    rows = list(pruned.rows())
    assert [r.key for r in rows] == evens and rows[-1].parent_id == evens[-2]
    assert rows[0].opens and not any(r.opens or r.depth for r in rows[1:])


# --------------------------------------------------------------------------- long series

LONG = 2_500  # images in a long series: 13 pages of cards
CARD = re.compile(r'<article class="card[^"]*"\s+id="image-(\d+)"')
PARENT_LINK = re.compile(r'<a href="([^"]*)" class="parent-link" data-parent-id="(\d+)"')


def branching_series(studio: Studio, size: int) -> tuple[Session, dict[int, int | None]]:
    """A session of ``size`` images (anchor included) shaped as a studio's series grows: half
    on a main chain, the rest in branches of 1-20 shots off it. Each image has its own small
    PNG, so each needs its own thumbnails. The rows go through the store layer in one
    transaction (shot by shot would take minutes). Returns the session and each image's parent.
    """
    character = studio.create_character("Rin", prompt="a girl with red hair", provider="preview")
    session = character.start_session(provider="preview")
    anchor = character.anchor
    assert anchor is not None
    rng = random.Random(12)
    parents: dict[int, int | None] = {anchor.id: None}
    main = [anchor.id]
    while len(parents) < size:
        new_id = anchor.id + len(parents)
        if len(main) < size // 2:
            parents[new_id] = main[-1]
            main.append(new_id)
            continue
        parent = rng.choice(main)
        for _ in range(min(rng.randint(1, 20), size - len(parents))):
            new_id = anchor.id + len(parents)
            parents[new_id] = parent
            parent = new_id
    rows = []
    for image_id, parent_id in parents.items():
        if parent_id is None:
            continue
        picture = io.BytesIO()
        PILImage.new("RGB", (8, 8), (image_id % 256, image_id // 256 % 256, 99)).save(
            picture, "PNG"
        )
        blob = studio.blobs.put(picture.getvalue(), "png")
        rows.append(
            {
                "id": image_id,
                "character_id": character.id,
                "session_id": session.id,
                "parent_id": parent_id,
                "kind": "shot",
                "status": ImageStatus.SUCCEEDED.value,
                "request": {"expression": f"step {image_id}"},
                "prompt": f"Rin, step {image_id}",
                "provider": "preview",
                "model": "",
                "sha256": blob.sha256,
                "format": "png",
                "width": 8,
                "height": 8,
                "byte_size": blob.size,
            }
        )
    with studio.engine.begin() as conn:
        insert_rows(conn, ImageRow, rows)
        update_row(conn, SessionRow, session.id, {"head_image_id": main[-1]})
    return studio.session(session.id), parents


def test_a_long_branching_series_exports_every_image_once_across_pages(
    studio: Studio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, parents = branching_series(studio, LONG)
    anchor = min(parents)
    made: Counter[tuple[str, int]] = Counter()
    real_render = onmodel.thumbnails.render_thumbnail

    def render_thumbnail(source: Path, size: int) -> bytes:
        made[(source.name, size)] += 1
        return real_render(source, size)

    monkeypatch.setattr(onmodel.thumbnails, "render_thumbnail", render_thumbnail)
    out = tmp_path / "out"
    result = export_session(studio, session, out)

    # every image copied once, under its own name
    assert sorted(f.image_id for f in result.files) == sorted(parents)
    assert len({f.name for f in result.files}) == LONG and result.images == LONG
    # series.json: every image once, anchor first, each with its true parent
    data = json.loads((out / "series.json").read_text(encoding="utf-8"))
    assert [r["id"] for r in data["images"]] == sorted(parents)
    assert {r["id"]: r["parent_id"] for r in data["images"]} == parents
    assert data["pages"] == {name: sha256_file(out / name) for name in result.pages}
    # the pages: every shot's card exactly once, each page linked to the next
    count = -(-(LONG - 1) // CARDS_PER_PAGE)
    assert result.pages == ["index.html", *(f"page-{n}.html" for n in range(2, count + 1))]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*(f.name for f in result.files), *result.pages, "series.json"]
    )
    where: dict[int, str] = {}
    htmls = {name: (out / name).read_text(encoding="utf-8") for name in result.pages}
    for name, html in htmls.items():
        cards = [int(i) for i in CARD.findall(html)]
        assert 0 < len(cards) <= CARDS_PER_PAGE
        assert not where.keys() & set(cards)  # no card on two pages
        where.update(dict.fromkeys(cards, name))
        following = result.pages[result.pages.index(name) + 1 :]
        assert ('rel="next"' in html) == bool(following)
        assert not following or f'href="{following[0]}" rel="next"' in html
    assert sorted(where) == sorted(parents)[1:]
    assert f'id="image-{anchor}" class="anchor-section"' in htmls["index.html"]
    # a parent link leads to the page that holds the parent's card (or jumps on this one)
    for name, html in htmls.items():
        for href, parent_id in PARENT_LINK.findall(html):
            page = where.get(int(parent_id), "index.html")
            assert href == (f"#image-{parent_id}" if page == name else f"{page}#image-{parent_id}")
    # the lineage panel: the head's neighbourhood, each fold linking to its first image's card
    panel = htmls["index.html"][htmls["index.html"].index('<div class="lineage"') :]
    folds = re.findall(r'<a class="node-row fold-row" href="([^"#]*)#image-(\d+)"', panel)
    assert folds and all(where[int(image_id)] == page for page, image_id in folds)
    assert 0 < panel.count('<li class="node') <= WHOLE_LINEAGE
    # each thumbnail made once: one card size per image, a few lineage-panel minis
    assert max(made.values()) == 1
    assert sum(size == CARD_SIZE for _, size in made) == LONG
    assert 0 < sum(size == MINI_SIZE for _, size in made) <= WHOLE_LINEAGE


def test_a_long_export_holds_a_chunk_of_records_and_a_page_of_views_at_a_time(
    studio: Studio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory stays flat in the size of the series: counted, not timed. Whenever a thumbnail is
    written or an image's record is, at most a chunk of image records and two pages of card
    views (the first page's, written last, and the current one's) are alive."""
    session, _ = branching_series(studio, LONG)
    chunk = inspect.signature(with_images).parameters["chunk"].default
    images: list[weakref.ref[Any]] = []
    views: list[weakref.ref[Any]] = []
    real_load, real_view = studio.lookups.images_by_id, onmodel.presentation.image_view

    def images_by_id(image_ids: Any) -> Any:
        found = real_load(image_ids)
        images.extend(weakref.ref(image) for image in found.values())
        return found

    def image_view(*args: Any, **kwargs: Any) -> Any:
        view = real_view(*args, **kwargs)
        views.append(weakref.ref(view))
        return view

    alive: list[tuple[int, int]] = []

    def count() -> None:
        alive.append((sum(r() is not None for r in images), sum(r() is not None for r in views)))

    real_read, real_record = Thumbnailer.read, onmodel.export._record

    def read(thumbnailer: Thumbnailer, sha256: str, fmt: str, size: int) -> bytes:
        count()
        return real_read(thumbnailer, sha256, fmt, size)

    def record(image: Any, name: str | None) -> dict[str, Any]:
        count()
        return real_record(image, name)

    monkeypatch.setattr(studio.lookups, "images_by_id", images_by_id)
    monkeypatch.setattr(onmodel.presentation, "image_view", image_view)
    monkeypatch.setattr(Thumbnailer, "read", read)
    monkeypatch.setattr(onmodel.export, "_record", record)
    export_session(studio, session, tmp_path / "out")
    assert len(alive) > 2 * LONG  # a look at every thumbnail and every record
    assert len(images) >= 3 * LONG  # planned, written and described: loaded three times
    assert max(n for n, _ in alive) <= chunk
    assert max(n for _, n in alive) <= 2 * CARDS_PER_PAGE + WHOLE_LINEAGE + 1
    assert len(views) > LONG


def test_a_damaged_blob_midway_leaves_no_export_that_looks_finished(
    studio: Studio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Image 500 of 1,000 is damaged: pages were already being written, and still no folder,
    no index.html, no zip and no temporary leftovers appear."""
    session, parents = branching_series(studio, 1_000)
    damaged = sorted(parents)[500]
    blob = blob_of(studio, damaged)
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-1] + b"\0")
    written: list[str] = []
    real_write = onmodel.export._ExportLinks.write

    def write(links: Any, html: str, destination: Path) -> str:
        written.append(destination.name)
        return real_write(links, html, destination)

    monkeypatch.setattr(onmodel.export._ExportLinks, "write", write)
    parent = tmp_path / "exports"
    parent.mkdir()
    with pytest.raises(BlobIntegrityError, match=rf"image {damaged} .*damaged"):
        export_session(studio, session, parent / "out", make_zip=True)
    assert written == ["page-2.html"]  # the failure came mid-way
    assert list(parent.iterdir()) == []


def test_reexporting_a_long_series_replaces_its_pages_and_keeps_the_users(
    studio: Studio, tmp_path: Path
) -> None:
    session, parents = branching_series(studio, 450)
    target = tmp_path / "out"
    first = export_session(studio, session, target, make_zip=True)
    assert first.pages == ["index.html", "page-2.html", "page-3.html"]
    (target / "mine.txt").write_text("kept")
    (target / "page-2.html").write_text("my notes on page 2")
    with pytest.raises(UsageError, match=r"page-2\.html was not written by an earlier export"):
        export_session(studio, session, target, make_zip=True)
    (target / "page-2.html").unlink()

    studio.annotate_image(max(parents), starred=True)
    result = export_session(studio, session, target, only="starred", make_zip=True)
    assert result.pages == ["index.html"] and result.kept == ["mine.txt"]
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [*(f.name for f in result.files), "index.html", "mine.txt", "series.json"]
    )
    assert result.zip_path is not None
    with zipfile.ZipFile(result.zip_path) as bundle:
        assert {"out/index.html", "out/series.json"} <= set(bundle.namelist())
    assert hidden(tmp_path) == []

    done = CliRunner().invoke(app, ["export", session.slug, "--to", str(tmp_path / "cli")])
    assert done.exit_code == 0, done.output
    assert "2 more page(s)" in " ".join(done.output.split())
    done = CliRunner().invoke(app, ["export", session.slug, "--to", str(tmp_path / "j"), "--json"])
    assert json.loads(done.output)["pages"] == first.pages


class CountingReader(io.StringIO):
    """Text that counts how much of it was read."""

    chars = 0

    def read(self, size: int | None = -1) -> str:
        text = super().read(size)
        self.chars += len(text)
        return text


def test_an_earlier_manifest_is_read_only_as_far_as_what_it_recorded(
    studio: Studio, tmp_path: Path
) -> None:
    session, _ = branching_series(studio, 450)
    export_session(studio, session, tmp_path / "out")
    text = (tmp_path / "out" / "series.json").read_text(encoding="utf-8")
    handle = CountingReader(text)
    recorded = onmodel.export._recorded_in(handle)
    assert recorded is not None
    files, pages = recorded
    assert len(files) == 450 and set(pages) == {"index.html", "page-2.html", "page-3.html"}
    assert handle.chars < len(text) / 4  # the images were never read

    # format 1 wrote what it recorded last, after every image's whole ancestry
    old = {
        "format": "onmodel-series",
        "format_version": 1,
        "images": [{"id": i, "lineage": list(range(i)), "n": 1.5e3} for i in range(300)],
        "files": {"000-anchor.png": "a" * 64},
        "index_sha256": "b" * 64,
        "pages": {"../elsewhere.html": "c" * 64, "page-x.html": "c" * 64},
    }
    recorded = onmodel.export._recorded_in(io.StringIO(json.dumps(old, indent=1)))
    assert recorded == ({"000-anchor.png": "a" * 64}, {"index.html": "b" * 64})
    for broken in ("", "[]", '{"format": "onmodel-series", "files": {', '{"format": 1 2}'):
        with pytest.raises(ValueError):
            onmodel.export._recorded_in(io.StringIO(broken))
    assert onmodel.export._recorded_in(io.StringIO('{"format": "other"}')) is None
