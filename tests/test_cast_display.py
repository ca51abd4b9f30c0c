"""Who is in a picture, wherever a picture is shown (issue 15): ``shot --with/--cast/--set``
from the command line, a dry run that names everyone and numbers every image it sends,
``show`` and ``tree`` (and their JSON), the web's cards, tiles, lineage and image pages, and
the export's pages and ``series.json``; each read a page (or a chunk of lines) at a time,
never once per image. Made offline with the preview provider."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from rich.console import Console

from cli_inprocess import run_cli, snapshot
from onmodel.cli.render import print_lineage
from onmodel.export import export_session
from onmodel.handles import Session
from onmodel.presentation import GridFilter, grid_view, session_view
from onmodel.studio import Studio
from onmodel.web.app import GalleryApp
from test_web_long import get, statements  # noqa: F401  (statements: a fixture)

ENSEMBLE = "Mia, Rin, Max (creature) · set: Bedroom"


def create_cast(studio: Studio) -> Session:
    """Mia (the lead), Rin, Max the creature and the Bedroom set, all in session ``mia``."""
    studio.create_character("Mia", prompt="a girl with red hair and green eyes")
    studio.create_character("Rin", prompt="a boy with black hair and blue eyes")
    studio.create_character("Max", prompt="a small brown dog", kind="creature")
    studio.create_character("Bedroom", prompt="a cosy bedroom", kind="set")
    return studio.start_session("mia", provider="preview", with_=["rin", "max", "bedroom"])


@pytest.fixture
def home(isolated_home: Path) -> Path:
    """The cast, for the command line."""
    with Studio.open(isolated_home) as studio:
        create_cast(studio)
    return isolated_home


@pytest.fixture
def cast_session(studio: Studio) -> Session:
    """The cast, through the library."""
    return create_cast(studio)


def shot_json(home: Path, *args: str) -> dict[str, Any]:
    outcome = run_cli(home, "shot", *args, "--json")
    assert outcome.code == 0, outcome.stderr
    data = json.loads(outcome.stdout)
    assert isinstance(data, dict)
    return data


def slugs(record: dict[str, Any]) -> list[str]:
    return [member["slug"] for member in record["cast"]]


# --------------------------------------------------------------------------- shot


def test_shot_with_and_set_makes_a_picture_of_everyone_in_order(home: Path) -> None:
    made = shot_json(home, "playing guitar", "--with", "rin", "--with", "max", "--set", "bedroom")
    assert made["status"] == "succeeded"
    assert slugs(made) == ["mia", "rin", "max", "bedroom"]
    assert [member["kind"] for member in made["cast"]] == [
        "character",
        "character",
        "creature",
        "set",
    ]
    assert [ref["role"] for ref in made["references"]][:4] == ["anchor"] * 4


def test_shot_cast_names_everyone_and_may_leave_the_lead_out(home: Path) -> None:
    assert slugs(shot_json(home, "walking", "--cast", "rin,max")) == ["rin", "max"]
    assert slugs(shot_json(home, "reading", "--cast", "max", "--cast", "mia")) == ["max", "mia"]


def test_a_dry_run_names_the_cast_and_numbers_every_image_it_sends(home: Path) -> None:
    first = shot_json(home, "waving")
    dry = run_cli(home, "shot", "playing guitar", "--with", "max", "--set", "bedroom", "--dry-run")
    assert dry.code == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert f"cast: {ENSEMBLE.replace('Rin, ', '')}" in lines
    assert (
        "images sent, in order: 1 anchor of Mia, 2 anchor of Max (creature), "
        f"3 anchor of Bedroom (set), 4 parent #{first['id']}"
    ) in lines
    assert "image 2 is Max" in dry.stdout  # the prompt numbers them the same way
    plan = json.loads(run_cli(home, "shot", "x", "--cast", "rin,mia", "--dry-run", "--json").stdout)
    assert [member["slug"] for member in plan["cast"]] == ["rin", "mia"]
    assert plan["cast"][0] == {"slug": "rin", "name": "Rin", "kind": "character"}
    assert [i["role"] for i in plan["inputs"]] == ["anchor", "anchor", "parent"]
    assert [i["member"] for i in plan["inputs"]] == ["rin", "mia", None]  # whose each is


def test_a_dry_run_numbers_views_and_ref_files_after_the_anchors(home: Path) -> None:
    with Studio.open(home) as studio:
        views = {view.request.view for view in studio.turnaround("max")}
        sketch = home / "sketch.png"
        sketch.write_bytes(studio.character("rin").anchor.read_bytes())  # type: ignore[union-attr]
    dry = run_cli(home, "shot", "x", "--with", "max", "--ref", str(sketch), "--dry-run")
    sent = next(line for line in dry.stdout.splitlines() if line.startswith("images sent"))
    listed = sent.removeprefix("images sent, in order: ").split(", ")
    assert listed[:2] == ["1 anchor of Mia", "2 anchor of Max (creature)"]
    assert {item.split(" ", 1)[1] for item in listed[2:-1]} == {
        f"view {view} of Max (creature)" for view in views
    }
    assert listed[-1] == f"{len(listed)} --ref sketch.png"


def test_a_dry_run_of_the_lead_alone_reads_as_before(home: Path) -> None:
    lines = run_cli(home, "shot", "sitting", "--dry-run").stdout.splitlines()
    assert not any(line.startswith("cast:") for line in lines)
    assert "images sent, in order: 1 anchor of Mia" in lines


def test_retakes_plan_the_same_cast(home: Path) -> None:
    dry = run_cli(home, "shot", "x", "--with", "rin", "--takes", "2", "--dry-run")
    assert dry.code == 0, dry.stderr
    assert "cast: Mia, Rin" in dry.stdout.splitlines() and "up to 2 takes" in dry.stdout
    takes = json.loads(
        run_cli(home, "shot", "y", "--with", "rin", "--takes", "2", "--json").stdout
    )["takes"]
    assert takes and all(slugs(take) == ["mia", "rin"] for take in takes)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--with", "bedroom"), "is a set, not someone in the scene"),
        (("--set", "max"), "not a set"),
        (("--with", "nobody"), "no character, creature, prop or set 'nobody'"),
        (("--with", "rin", "--cast", "rin"), "not both"),
    ],
)
def test_a_wrong_cast_is_refused_in_one_line_before_anything_is_recorded(
    home: Path, args: tuple[str, ...], says: str
) -> None:
    before = snapshot(home)
    for dry in ((), ("--dry-run",)):
        outcome = run_cli(home, "shot", "x", *args, *dry)
        assert outcome.code == 2
        assert len(outcome.error_lines) == 1 and says in outcome.stderr, outcome.stderr
        assert "Traceback" not in outcome.stderr
    assert snapshot(home) == before


def test_a_member_not_in_the_session_is_refused_with_how_to_add_it(home: Path) -> None:
    with Studio.open(home) as studio:
        studio.create_character("Kai", prompt="a tall boy")
    outcome = run_cli(home, "shot", "x", "--with", "kai")
    assert outcome.code == 2 and "not in the cast of session 'mia'" in outcome.stderr
    assert "onmodel session cast add" in outcome.stderr


# --------------------------------------------------------------------------- show and tree


def test_show_says_who_is_in_a_picture_of_several(home: Path) -> None:
    alone = shot_json(home, "waving")
    several = shot_json(home, "guitar", "--with", "rin", "--with", "max", "--set", "bedroom")
    shown = run_cli(home, "show", str(several["id"])).stdout
    assert f"cast: {ENSEMBLE}" in shown.splitlines()
    assert "cast:" not in run_cli(home, "show", str(alone["id"])).stdout
    data = json.loads(run_cli(home, "show", str(several["id"]), "--json").stdout)
    assert data["cast"][2] == {"slug": "max", "name": "Max", "kind": "creature"}
    assert slugs(json.loads(run_cli(home, "show", str(alone["id"]), "--json").stdout)) == ["mia"]


def test_tree_marks_who_joined_the_lead(home: Path) -> None:
    alone = shot_json(home, "waving")
    several = shot_json(home, "guitar", "--with", "rin", "--with", "max", "--set", "bedroom")
    without = shot_json(home, "walking", "--cast", "rin")
    lines = {
        line.split()[0]: line for line in run_cli(home, "tree").stdout.splitlines() if "#" in line
    }
    assert lines[f"#{several['id']}"].endswith("+ Rin, Max · in Bedroom")
    assert "only Rin" in lines[f"#{without['id']}"]
    assert "+" not in lines[f"#{alone['id']}"]
    tree = json.loads(run_cli(home, "tree", "--json").stdout)
    casts = {entry["id"]: entry["cast"] for entry in tree}
    assert casts[several["id"]] == ["mia", "rin", "max", "bedroom"]
    assert casts[alone["id"]] == ["mia"]


def test_show_names_the_member_each_check_of_a_shot_of_several_measured(
    studio: Studio, cast_session: Session
) -> None:
    several = cast_session.shot("guitar", with_=["rin"], set_="bedroom")
    studio.check(several, "palette")
    shown = run_cli(studio.paths.home, "show", str(several.id)).stdout.splitlines()
    checks = shown[shown.index("checks:") + 1 :]
    assert [line.split()[0] for line in checks if line.startswith("  ") and "·" in line] == [
        "Mia",
        "Rin",
    ]


# --------------------------------------------------------------------------- the web


def test_web_pages_show_the_cast(studio: Studio, cast_session: Session) -> None:
    several = cast_session.shot("guitar", with_=["rin", "max"], set_="bedroom")
    alone = cast_session.shot("waving")
    app = GalleryApp(studio)
    page = get(app, f"/sessions/{cast_session.slug}")
    assert page.status == 200
    assert f"cast: {ENSEMBLE}" in page.text  # the session's, in its heading
    assert ENSEMBLE in page.text.split('aria-label="Shots"')[1]  # the card
    assert "+ Rin, Max · in Bedroom" in page.text  # its lineage line
    assert page.text.count('class="cast"') == 2  # the heading, the card; Mia alone has none
    index = get(app, "/").text
    assert 'data-kind="creature"' in index and 'data-kind="set"' in index
    grid = get(app, f"/sessions/{cast_session.slug}/grid")
    assert grid.status == 200 and "+ Rin, Max · in Bedroom" in grid.text
    image = get(app, f"/images/{several.id}")
    assert image.status == 200 and ENSEMBLE in image.text
    assert ENSEMBLE not in get(app, f"/images/{alone.id}").text
    record = get(app, f"/api/images/{several.id}").json()
    assert slugs(record) == ["mia", "rin", "max", "bedroom"]


def post(app: GalleryApp, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """A form POSTed through the WSGI app from its own page, asking for JSON."""
    body = urlencode(form).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_ORIGIN": "http://127.0.0.1:8000",
        "HTTP_ACCEPT": "application/json",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
    }
    status: list[str] = []
    reply = b"".join(app(environ, lambda line, headers, *_: status.append(line)))
    return int(status[0].split()[0]), json.loads(reply)


def test_the_web_shot_form_offers_the_cast_and_makes_a_shot_of_several(
    studio: Studio, cast_session: Session
) -> None:
    app = GalleryApp(studio)
    page = get(app, f"/sessions/{cast_session.slug}").text
    assert 'name="with:rin"' in page and 'name="with:max"' in page
    assert 'name="with:bedroom"' not in page  # a set is chosen as the set, not as someone
    assert '<option value="bedroom">Bedroom</option>' in page
    form = {"session": cast_session.slug, "key": "a" * 32, "pose": "sitting"}
    status, made = post(app, "/shots", {**form, "with:max": "1", "set": "bedroom"})
    app.runner.join(30)
    assert status == 202, made
    assert slugs(studio.image(int(made["id"])).to_dict()) == ["mia", "max", "bedroom"]
    before = len(studio.session_images(cast_session))
    status, refused = post(app, "/shots", {**form, "key": "b" * 32, "with:kai": "1"})
    assert status == 400 and "not 'kai'" in refused["error"]
    assert len(studio.session_images(cast_session)) == before


# --------------------------------------------------------------------------- the export


def test_the_export_lists_and_shows_the_cast(
    studio: Studio, cast_session: Session, tmp_path: Path
) -> None:
    several = cast_session.shot("guitar", with_=["rin", "max"], set_="bedroom")
    alone = cast_session.shot("waving")
    result = export_session(studio, cast_session.slug, tmp_path / "out")
    series = json.loads(result.manifest.read_text(encoding="utf-8"))
    images = {image["id"]: image for image in series["images"]}
    assert slugs(images[several.id]) == ["mia", "rin", "max", "bedroom"]
    assert images[several.id]["cast"][3]["kind"] == "set"
    assert slugs(images[alone.id]) == ["mia"]
    assert series["session"]["members"] == ["rin", "max", "bedroom"]
    html = result.index.read_text(encoding="utf-8")
    assert f"cast: {ENSEMBLE}" in html  # the session's heading
    assert f'<div class="cast" title="Who is in this picture">{ENSEMBLE}</div>' in html  # a card
    assert "+ Rin, Max · in Bedroom" in html  # its lineage line


# --------------------------------------------------------------------------- cost


def test_casts_cost_a_few_statements_per_page_not_per_image(
    studio: Studio,
    cast_session: Session,
    tmp_path: Path,
    statements: list[str],  # noqa: F811  (the fixture imported above)
) -> None:
    """A session page, a grid page, a drawn tree, ``tree --json``'s loader and the export read
    the same statements for 3 shots of several as for 30: casts are read a page (or a chunk of
    lines) at a time."""
    links = GalleryApp(studio).links
    costs: list[tuple[int, ...]] = []
    for size in (3, 30):
        made = len(studio.session_images(cast_session))
        for number in range(made, size):
            cast_session.shot(f"pose {number}", with_=["rin", "max"], set_="bedroom")
        fresh = studio.session(cast_session.id)
        spent: list[int] = []

        statements.clear()
        view = session_view(fresh, links)
        spent.append(len(statements))
        assert sum(card.cast == ENSEMBLE for card in view.images) == size

        statements.clear()
        grid = grid_view(fresh, links, GridFilter())
        spent.append(len(statements))
        assert sum(tile.image.cast_mark != "" for tile in grid.tiles) == size

        statements.clear()
        out = io.StringIO()
        lines = fresh.lineage().view()
        print_lineage(Console(file=out), lines, studio.lookups.images_by_id, None, lambda _: "")
        spent.append(len(statements))
        assert out.getvalue().count("+ Rin, Max · in Bedroom") == size

        statements.clear()
        result = export_session(studio, fresh.slug, tmp_path / f"out-{size}")
        spent.append(len(statements))
        series = json.loads(result.manifest.read_text(encoding="utf-8"))
        assert sum(len(image["cast"]) == 4 for image in series["images"]) == size
        costs.append(tuple(spent))
    assert costs[0] == costs[1], costs
