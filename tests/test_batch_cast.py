"""Shot lists with a cast: ``with:``, ``cast:`` and ``set:`` at every layer and as matrix axes.

Run offline with the preview provider: who is in each picture is recorded in order, every cast
mistake is refused with its file and line before anything is recorded, and a shot of the lead
alone keeps the key it had before casts existed, so batches made then resume.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from sqlmodel import select

from cli_inprocess import run_cli
from onmodel.batch import (
    SessionDefaults,
    ShotListError,
    expand,
    json_schema,
    list_batches,
    parse_shot_list,
    preview_batch,
    run_batch,
)
from onmodel.providers.preview import PreviewProvider
from onmodel.store.cast import cast_of
from onmodel.store.database import transaction
from onmodel.store.models import CharacterRow, ImageRow
from onmodel.studio import Studio

SESSION = SessionDefaults(
    slug="week",
    provider="preview",
    model="gpt-image-2",
    params={"size": "1024x1024"},
    lead="mia",
)

LEAD_ONLY = """
    defaults:
      scene: park
    shots:
      - expression: happy
      - pose: waving
        repeat: 2
    matrices:
      - axes:
          expression: [sad, calm]
    """
KEYS_BEFORE_CASTS = [
    # computed with the code before shot lists took with/cast/set (commit 5f651e7)
    "42f96be88fdde4bd6b448c0d82bff8e414c6689b019e0951dcd41e4bc50405bf",
    "cb5ac74f5122d7b72dbd98f9d6346af9de62176aa89d7ac9fef8c3b88e3c5b79",
    "601bc1668304e81b0c79854983071ca803d33a1fc93d31e87e26e2207a1e11f4",
    "8148e6f9a62f3c02ed95533d0c021c352cf14b1ebf0c92375587734f60ade5e0",
    "8bd50a44f3c22b67f1298a170c2bb3ba5a7781716e3857bb215cc08afe907751",
]
SPEC_HASH_BEFORE_CASTS = "2bd4829126fc489de5ab5e4a730f18d30cfad0ecdeb5cc342dea8b7056f3e037"


def expanded(text: str) -> list[dict[str, object]]:
    loaded = parse_shot_list(textwrap.dedent(text), label="list.yaml")
    return [shot.to_dict() for shot in expand(loaded, SESSION).shots]


def problems(text: str) -> list[str]:
    with pytest.raises(ShotListError) as caught:
        parse_shot_list(textwrap.dedent(text), label="list.yaml")
    return [p.describe() for p in caught.value.problems]


def write(tmp_path: Path, text: str, name: str = "week.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def cast_studio(studio: Studio) -> Studio:
    """Mia (the lead), Rin, Max the dog, two sets, and Zed, who is not in the session."""
    for name, prompt, kind in [
        ("Mia", "a girl with red hair and green eyes", "character"),
        ("Rin", "a boy with black hair and blue eyes", "character"),
        ("Max", "a small brown dog", "creature"),
        ("Bedroom", "a cosy bedroom", "set"),
        ("Park", "a green park", "set"),
        ("Zed", "a tall man", "character"),
    ]:
        studio.create_character(name, prompt=prompt, kind=kind, provider="preview")
    studio.start_session("mia", provider="preview", with_=["rin", "max", "bedroom", "park"])
    return studio


def shot_images(studio: Studio) -> list[ImageRow]:
    """The shots made, in the order they were recorded (a run with concurrency 1: the list's)."""
    with transaction(studio.engine) as db:
        rows = db.exec(select(ImageRow).where(ImageRow.kind == "shot")).all()
        return sorted(rows, key=lambda row: row.id or 0)


def slugs_in(studio: Studio, image_ids: list[int]) -> dict[int, list[str]]:
    found = cast_of(studio.engine, image_ids)
    return {each: [studio.character(c).slug for c in found[each]] for each in image_ids}


# ---------------------------------------------------------------------------------- running


def test_a_three_member_shot_runs_offline_and_records_who_is_in_it(
    cast_studio: Studio, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        """
        shots:
          - action: playing guitar
            with: rin
            set: bedroom
          - action: walking the dog
            cast: [max, mia]
          - action: reading
        """,
    )
    report = run_batch(cast_studio, path, handle_signals=False, concurrency=1)
    assert report.succeeded == 3 and report.complete
    rows = shot_images(cast_studio)
    ids = [row.id for row in rows if row.id is not None]
    assert slugs_in(cast_studio, ids) == {
        ids[0]: ["mia", "rin", "bedroom"],  # figures in order, then the set
        ids[1]: ["max", "mia"],
        ids[2]: ["mia"],
    }
    assert rows[0].request["cast"] == ["mia", "rin"] and rows[0].request["set"] == "bedroom"
    assert "cast" not in rows[2].request  # the lead alone: the request as before casts


def test_matrices_over_sets_and_who_joins_make_one_shot_per_value(
    cast_studio: Studio, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        """
        matrices:
          - pose: sitting
            axes:
              with: [rin, [rin, max]]
              set: [bedroom, park]
            exclude:
              - {with: [rin, max], set: park}
        """,
    )
    preview = preview_batch(cast_studio, path)
    assert [p.status.shot.source for p in preview.shots] == [
        "matrices[0] with=rin, set=bedroom",
        "matrices[0] with=rin, set=park",
        "matrices[0] with=[rin, max], set=bedroom",
    ]
    assert [p.status.shot.label for p in preview.shots] == [
        "sitting, mia & rin, in bedroom",
        "sitting, mia & rin, in park",
        "sitting, mia & rin & max, in bedroom",
    ]
    report = run_batch(cast_studio, path, handle_signals=False, concurrency=1)
    assert report.succeeded == 3
    ids = [row.id for row in shot_images(cast_studio) if row.id is not None]
    assert list(slugs_in(cast_studio, ids).values()) == [
        ["mia", "rin", "bedroom"],
        ["mia", "rin", "park"],
        ["mia", "rin", "max", "bedroom"],
    ]


def test_dry_run_and_status_show_who_is_in_each_shot(cast_studio: Studio, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        shots:
          - action: playing guitar
            with: [rin, max]
            set: bedroom
        """,
    )
    home = cast_studio.paths.home
    dry = run_cli(home, "batch", "run", str(path), "--dry-run")
    assert dry.code == 0, dry.stderr
    assert "playing guitar, mia & rin & max, in bedroom" in dry.stdout
    as_json = run_cli(home, "batch", "run", str(path), "--dry-run", "--json")
    request = json.loads(as_json.stdout)["shots"][0]["request"]
    assert request == {"action": "playing guitar", "cast": ["mia", "rin", "max"], "set": "bedroom"}
    assert run_cli(home, "batch", "run", str(path), "--progress", "none").code == 0
    status = run_cli(home, "batch", "status", str(path))
    assert "done" in status.stdout and "mia & rin & max, in bedroom" in status.stdout


def test_schema_describes_with_cast_and_set_at_every_layer_and_axis() -> None:
    defs = json_schema()["$defs"]
    for model in ("ShotFields", "Shot", "Matrix", "MatrixOverride", "MatrixAxes"):
        properties = defs[model]["properties"]
        for key in ("with", "cast", "set"):
            assert properties[key]["description"], (model, key)
    assert "replaces" in defs["ShotFields"]["properties"]["with"]["description"].lower()


# ---------------------------------------------------------------------------------- layers


def test_a_deeper_with_or_cast_replaces_the_one_above_and_set_is_inherited() -> None:
    shots = expanded(
        """
        defaults:
          with: max
          set: bedroom
        shots:
          - pose: a
          - pose: b
            with: rin
          - pose: c
            cast: [rin]
          - pose: d
            with: []
            set: ""
        matrices:
          - axes:
              pose: [e, f]
            with: [rin, max]
            overrides:
              - when: {pose: f}
                set: park
        """
    )
    requests = [shot["request"] for shot in shots]
    assert requests == [
        {"pose": "a", "cast": ["mia", "max"], "set": "bedroom"},
        {"pose": "b", "cast": ["mia", "rin"], "set": "bedroom"},  # replaced, not added
        {"pose": "c", "cast": ["rin"], "set": "bedroom"},
        {"pose": "d"},  # the lead alone, nowhere in particular
        {"pose": "e", "cast": ["mia", "rin", "max"], "set": "bedroom"},
        {"pose": "f", "cast": ["mia", "rin", "max"], "set": "park"},
    ]


def test_naming_the_lead_alone_is_the_same_shot_as_naming_no_one() -> None:
    shots = expanded(
        """
        shots:
          - pose: waving
          - pose: waving
            cast: [mia]
          - pose: waving
            with: [mia]
          - pose: waving
            with: rin
        """
    )
    assert len(shots) == 2  # the three spellings of the lead alone are one shot
    assert shots[0]["request"] == {"pose": "waving"}
    assert shots[1]["request"] == {"pose": "waving", "cast": ["mia", "rin"]}


# ---------------------------------------------------------------------------------- keys


def test_a_member_is_keyed_by_its_slug_however_the_list_spells_it(
    cast_studio: Studio, tmp_path: Path
) -> None:
    rin = cast_studio.character("rin").id
    path = write(
        tmp_path,
        f"""
        shots:
          - pose: waving
            with: Rin
          - pose: waving
            with: "#{rin}"
          - pose: waving
            cast: [Mia, rin]
            set: Bedroom
          - pose: sitting
          - pose: sitting
            cast: [Mia]
        """,
    )
    preview = preview_batch(cast_studio, path)
    shots = [planned.status.shot for planned in preview.shots]
    assert [shot.label for shot in shots] == [
        "waving, mia & rin",
        "waving, mia & rin, in bedroom",
        "sitting",
    ]
    assert len(preview.warnings) == 2  # "#id" and [Mia] are shots already listed
    assert "shots[1] (line 5) is the same shot as shots[0] (line 3)" in preview.warnings[0]


def test_keys_of_lead_only_shots_are_those_made_before_casts() -> None:
    loaded = parse_shot_list(textwrap.dedent(LEAD_ONLY), label="list.yaml")
    assert [shot.key for shot in expand(loaded, SESSION).shots] == KEYS_BEFORE_CASTS
    assert loaded.spec_hash() == SPEC_HASH_BEFORE_CASTS


def test_a_shot_with_a_cast_or_set_has_its_own_key() -> None:
    shots = expanded(
        """
        shots:
          - pose: waving
          - pose: waving
            with: rin
          - pose: waving
            cast: [rin, mia]
          - pose: waving
            set: park
        """
    )
    assert len({shot["key"] for shot in shots}) == 4


def test_a_batch_made_of_the_lead_alone_resumes_when_casts_are_added(
    cast_studio: Studio, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        """
        shots:
          - pose: waving
          - pose: sitting
        """,
    )
    first = run_batch(cast_studio, path, handle_signals=False)
    assert first.succeeded == 2
    write(
        tmp_path,
        """
        shots:
          - pose: waving
          - pose: sitting
            cast: [mia]
          - pose: sitting
            with: rin
            set: park
        """,
    )
    again = run_batch(cast_studio, path, handle_signals=False)
    assert (again.already_done, again.succeeded) == (2, 1)
    assert again.batch_id == first.batch_id
    newest = shot_images(cast_studio)[-1]
    assert newest.id is not None
    assert slugs_in(cast_studio, [newest.id])[newest.id] == ["mia", "rin", "park"]


# ---------------------------------------------------------------------------------- refusals


def test_with_and_cast_on_one_layer_are_refused_with_their_line() -> None:
    found = problems(
        """
        defaults:
          with: rin
          cast: [rin]
        shots:
          - pose: a
            with: max
            cast: [max]
        """
    )
    assert found == [
        "list.yaml:4: defaults.cast: with (who joins the lead) and cast (everyone, in order) "
        "on one layer; keep one",
        "list.yaml:8: shots[0].cast: with (who joins the lead) and cast (everyone, in order) "
        "on one layer; keep one",
    ]


def test_matrix_cast_axes_are_checked_like_the_others() -> None:
    found = problems(
        """
        matrices:
          - axes:
              with: [rin, [rin]]
              set: [park]
            cast: [max]
            set: bedroom
            exclude:
              - {set: beach}
            overrides:
              - when: {with: rin}
                cast: [rin]
        """
    )
    assert found == [
        "list.yaml:4: matrices[0].axes.with[1]: 'rin' is listed twice",
        "list.yaml:6: matrices[0].cast: cast is a fixed value of this matrix and with an axis; "
        "keep one",
        "list.yaml:7: matrices[0].set: set is both an axis and a fixed value of this matrix",
        "list.yaml:9: matrices[0].exclude[0].set: 'beach' is not one of the set values (park)",
        "list.yaml:12: matrices[0].overrides[0].cast: an override cannot change the axis "
        "'with' (use exclude and a shot)",
    ]


def test_a_name_that_is_not_a_plain_line_is_refused_with_its_line() -> None:
    found = problems(
        """
        shots:
          - with: ["rin\\nmax"]
        """
    )
    assert len(found) == 1 and found[0].startswith("list.yaml:3: shots[0].with")


@pytest.mark.parametrize(
    ("shot", "message"),
    [
        ("with: zed", "character 'zed' is not in the cast of session 'mia'"),
        ("with: nobody", "no character, creature, prop or set 'nobody'"),
        ("with: bedroom", "'bedroom' is a set, not someone in the scene"),
        ("cast: [rin, park]", "'park' is a set, not someone in the scene"),
        ("set: rin", "'rin' is a character, not a set"),
        ("set: max", "'max' is a creature, not a set"),
    ],
)
def test_cast_mistakes_stop_the_run_before_anything_is_recorded(
    cast_studio: Studio, tmp_path: Path, shot: str, message: str
) -> None:
    path = write(
        tmp_path,
        f"""
        shots:
          - pose: waving
          - pose: sitting
            {shot}
        """,
    )
    with pytest.raises(ShotListError) as refused:
        run_batch(cast_studio, path, handle_signals=False)
    assert str(refused.value).startswith(f"{path}:4: shots[1]: ")
    assert message in str(refused.value)
    assert shot_images(cast_studio) == [] and list_batches(cast_studio) == []


def test_every_cast_mistake_is_reported_at_once_each_with_its_line(
    cast_studio: Studio, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        """
        shots:
          - with: zed
        matrices:
          - axes:
              pose: [a, b, c]
              set: [park, rin]
        """,
    )
    for attempt in (run_batch, preview_batch):  # the run and its --dry-run alike
        with pytest.raises(ShotListError) as refused:
            attempt(cast_studio, path, handle_signals=False)
        found = [(p.line, p.where) for p in refused.value.problems]
        assert found == [(3, "shots[0]"), (5, "matrices[0] pose=a, set=rin")]  # once a matrix
    assert shot_images(cast_studio) == [] and list_batches(cast_studio) == []


def test_a_member_without_an_anchor_is_refused_with_its_line(
    cast_studio: Studio, tmp_path: Path
) -> None:
    with transaction(cast_studio.engine) as db:
        row = db.exec(select(CharacterRow).where(CharacterRow.slug == "max")).one()
        row.anchor_image_id = None  # as after an anchor that failed
        db.add(row)
    path = write(tmp_path, "shots:\n  - pose: a\n  - with: max\n")
    with pytest.raises(ShotListError, match="has no anchor image yet") as refused:
        run_batch(cast_studio, path, handle_signals=False)
    assert str(refused.value).startswith(f"{path}:3: shots[1]: creature 'max'")
    assert shot_images(cast_studio) == []


def test_too_many_images_for_the_model_is_refused_with_its_line(
    cast_studio: Studio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PreviewProvider, "max_input_images", 3)
    path = write(
        tmp_path,
        """
        shots:
          - with: rin
            set: park
          - with: [rin, max]
            set: park
        """,
    )
    with pytest.raises(ShotListError) as refused:
        run_batch(cast_studio, path, handle_signals=False)
    text = str(refused.value)
    assert text.startswith(f"{path}:5: shots[1]: this shot needs 4 input images")
    assert "the anchor of park" in text
    assert shot_images(cast_studio) == []


def test_the_cli_refuses_a_cast_mistake_in_one_line(cast_studio: Studio, tmp_path: Path) -> None:
    path = write(tmp_path, "shots:\n  - with: zed\n")
    home = cast_studio.paths.home
    for args in (["--dry-run"], ["--progress", "none"]):
        outcome = run_cli(home, "batch", "run", str(path), *args)
        assert outcome.code != 0
        assert len(outcome.error_lines) == 1
        assert f"{path}:2: shots[0]" in outcome.stderr
        assert "not in the cast of session 'mia'" in outcome.stderr
    assert shot_images(cast_studio) == []
