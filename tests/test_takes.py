"""Takes: the images of a shot list's ``repeat: 3`` are recorded as takes 1, 2 and 3 of 3
(revision 0005), so that every place a series is shown tells them apart ("take 2/3"), and a
retry of a failed take is made, and drawn, as the same take."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from cli_inprocess import run_cli
from onmodel.providers.base import GenerationRequest, GenerationResult, ProviderError
from onmodel.providers.preview import PreviewProvider
from onmodel.store.database import SCHEMA_HEAD, _alembic_config, create_database_engine
from onmodel.studio import Studio

PROMPT = "a cheerful girl with orange hair and green eyes"
TAKES = "shots:\n  - pose: playing guitar\n    repeat: 3\n"


def run_takes(home: Path, tmp_path: Path) -> tuple[Path, list[int]]:
    """A character, a session and a ``repeat: 3`` shot list run on the offline preview: the
    shot list, and its images' ids in take order (one may be missing: a failed take)."""
    assert run_cli(home, "character", "new", "Mia", "--prompt", PROMPT).code == 0
    assert run_cli(home, "session", "new", "mia").code == 0
    week = tmp_path / "week.yaml"
    week.write_text(TAKES, encoding="utf-8")
    run_cli(home, "batch", "run", str(week))
    status = json.loads(run_cli(home, "batch", "status", str(week), "--json").stdout)
    return week, [shot["image_id"] for shot in status["shots"]]


def line_of(output: str, image_id: int) -> str:
    """The line of ``output`` that shows image ``image_id``."""
    return next(line for line in output.splitlines() if f"#{image_id} " in line)


def test_each_take_carries_its_number_in_tree_show_listings_and_json(
    isolated_home: Path, tmp_path: Path
) -> None:
    _, ids = run_takes(isolated_home, tmp_path)
    assert len(ids) == 3
    tree = run_cli(isolated_home, "tree").stdout
    listed = run_cli(isolated_home, "images").stdout
    session = run_cli(isolated_home, "session", "show").stdout
    tree_json = run_cli(isolated_home, "tree", "--json").stdout
    for take, image_id in enumerate(ids, 1):
        label = f"playing guitar · take {take}/3"
        assert label in line_of(tree, image_id)
        assert label in line_of(listed, image_id)
        assert label in line_of(session, image_id)
        shown = run_cli(isolated_home, "show", str(image_id))
        assert label in shown.stdout.splitlines()[0]
        data = json.loads(run_cli(isolated_home, "show", str(image_id), "--json").stdout)
        assert (data["variation"], data["variations"], data["label"]) == (take, 3, label)
        assert f'"label": "{label}"' in tree_json


def test_a_single_shot_is_no_take(studio: Studio) -> None:
    studio.create_character("Mia", prompt=PROMPT)
    session = studio.start_session("mia")
    image = session.shot(pose="waving")
    assert (image.variation, image.variations, image.take) == (None, None, None)
    assert image.label == "waving"
    assert (image.to_dict()["variation"], image.to_dict()["variations"]) == (None, None)


def test_a_retried_take_is_made_and_drawn_as_the_same_take(
    isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Take 2 fails; ``onmodel retry`` makes take 2/3 again, not a plain shot."""
    drawn = PreviewProvider.generate
    seen: list[tuple[int, int]] = []
    failing = {2}

    def generate(self: PreviewProvider, request: GenerationRequest) -> GenerationResult:
        seen.append((request.variation, request.variations))
        if request.variation in failing:
            raise ProviderError("the server is down", kind="server")
        return drawn(self, request)

    monkeypatch.setattr(PreviewProvider, "generate", generate)
    week, ids = run_takes(isolated_home, tmp_path)
    status = json.loads(run_cli(isolated_home, "batch", "status", str(week), "--json").stdout)
    assert [shot["state"] for shot in status["shots"]] == ["done", "failed", "done"]
    failed = ids[1]
    data = json.loads(run_cli(isolated_home, "show", str(failed), "--json").stdout)
    assert (data["status"], data["variation"], data["variations"]) == ("failed", 2, 3)

    failing.clear()
    seen.clear()
    retried = run_cli(isolated_home, "retry", str(failed), "--json")
    assert retried.code == 0, retried.stderr
    made = json.loads(retried.stdout)
    assert seen == [(2, 3)]  # the preview drew "take 2/3", not "shot"
    assert (made["retry_of_id"], made["variation"], made["variations"]) == (failed, 2, 3)
    assert made["label"] == "playing guitar · take 2/3"
    assert "playing guitar · take 2/3" in line_of(run_cli(isolated_home, "tree").stdout, made["id"])


def test_revision_0005_adds_the_take_columns_to_a_0004_database_and_takes_them_away(
    tmp_path: Path,
) -> None:
    """Images made before takes were recorded have none (they read as single shots); the
    downgrade drops the columns in place and keeps every row."""
    from alembic import command

    home = tmp_path / "home"
    engine = create_database_engine(f"sqlite:///{home / 'onmodel.db'}")
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
        conn.execute(
            text(
                "INSERT INTO character (id, slug, name, description, sheet, created_at,"
                " updated_at) VALUES (1, 'mia', 'Mia', '', '{}', '2026-01-01', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO image (id, character_id, kind, status, request, prompt, provider,"
                " model, params, returned, error_categories, starred, note, created_at,"
                " updated_at) VALUES (7, 1, 'shot', 'succeeded', '{\"pose\": \"waving\"}', 'p',"
                " 'preview', 'gpt-image-2', '{}', '{}', '[]', 0, '', '2026-01-01',"
                " '2026-01-01')"
            )
        )
    engine.dispose()
    with Studio.open(home) as studio:  # upgrades it
        old = studio.image(7)
        assert (old.variation, old.variations, old.label) == (None, None, "waving")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            SCHEMA_HEAD
        )
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")
    with engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("image")}
        assert not {"variation", "variations"} & columns
        assert conn.execute(text("SELECT id FROM image")).scalars().all() == [7]
    engine.dispose()
