"""How a shot names its cast, from the library, the CLI and a shot list: every spelling a user
may reach for works the same, and every slip is one line before anything is recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_inprocess import run_cli
from onmodel.errors import UsageError
from onmodel.studio import Studio


@pytest.fixture
def cast_home(isolated_home: Path) -> Path:
    with Studio.open(isolated_home) as studio:
        studio.create_character("Mia", prompt="a girl with red hair", provider="preview")
        studio.create_character("Rin", prompt="a boy with black hair", provider="preview")
        studio.create_character("Bedroom", prompt="a room", kind="set", provider="preview")
        studio.start_session("mia", provider="preview", with_=["rin", "bedroom"])
    return isolated_home


def test_the_library_takes_handles_ids_names_and_a_single_name(cast_home: Path) -> None:
    with Studio.open(cast_home) as studio:
        session = studio.session("mia")
        rin, bedroom = studio.character("rin"), studio.character("bedroom")
        spellings = [
            {"with_": [rin], "set_": bedroom},
            {"with_": [rin.id], "set_": bedroom.id},
            {"with_": "rin", "set_": "Bedroom"},
            {"with_": ["Rin"], "set_": f"#{bedroom.id}"},
            {"cast": ["mia", "rin"], "set_": "bedroom"},
        ]
        requests = [session.plan("waving", **spelling).request for spelling in spellings]  # type: ignore[arg-type]
        assert all(r.cast == ["mia", "rin"] and r.set == "bedroom" for r in requests)
        assert studio.character(f"#{rin.id}").slug == "rin"  # "#12", as images are named


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--cast", ""], "error: an empty name in the cast"),
        (["--cast", "mia,"], "error: an empty name in the cast"),
        (["--with", "rin", "--with", "rin"], "error: 'rin' is named twice in who joins"),
        (["--cast", "rin,Rin"], "error: 'rin' is named twice in the shot's cast"),
        (["--with", "rin", "--cast", "rin"], "error: name who joins the lead (with) or every"),
    ],
)
def test_cli_cast_slips_are_one_line_and_record_nothing(
    cast_home: Path, options: list[str], message: str
) -> None:
    done = run_cli(cast_home, "shot", "waving", *options)
    assert done.code == 2 and done.stderr.startswith(message), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert run_cli(cast_home, "images", "--json").stdout.count('"kind": "shot"') == 0


def test_naming_the_lead_among_those_who_join_it_is_the_lead_alone(cast_home: Path) -> None:
    with Studio.open(cast_home) as studio:
        session = studio.session("mia")
        assert session.plan("waving", with_=["mia"]).request.as_params() == {"text": "waving"}
        with_rin = session.plan("waving", with_=["mia", "rin"]).request
        assert with_rin.cast == ["mia", "rin"]


def test_a_set_cannot_lead_a_session(cast_home: Path) -> None:
    done = run_cli(cast_home, "session", "new", "bedroom", "--provider", "preview")
    assert done.code == 2
    assert "'bedroom' is a set: a session is led by a character, a creature or a prop" in (
        done.stderr
    )
    with Studio.open(cast_home) as studio:
        assert [s.slug for s in studio.sessions()] == ["mia"]
        with pytest.raises(UsageError, match="is a set"):
            studio.start_session("bedroom")


def test_a_shot_lists_cast_slips_are_told_with_their_line(cast_home: Path) -> None:
    shots = cast_home / "slips.yaml"
    shots.write_text(
        "session: mia\nshots:\n  - pose: waving\n    with: [rin, rin]\n"
        "  - pose: sitting\n    cast: ['']\n",
        encoding="utf-8",
    )
    done = run_cli(cast_home, "batch", "run", str(shots), "--dry-run")
    assert done.code == 2
    assert "slips.yaml:4: shots[0].with: 'rin' is named twice" in done.stderr
    assert "slips.yaml:6: shots[1].cast: an empty name in the cast" in done.stderr
    shots.write_text("session: mia\nshots:\n  - pose: sitting\n    cast: 'mia,rin'\n")
    done = run_cli(cast_home, "batch", "run", str(shots), "--dry-run")
    assert "slips.yaml:4: shots[0].cast: 'mia,rin' in the cast is one name: list the names " in (
        done.stderr
    )
    assert "as [mia, rin]" in done.stderr
    shots.write_text("session: mia\nshots:\n  - pose: reading\n    with: bedroom\n")
    done = run_cli(cast_home, "batch", "run", str(shots), "--dry-run")
    assert done.code == 2
    assert "slips.yaml:3:" in done.stderr
    assert "'bedroom' is a set, not someone in the scene" in done.stderr
    assert "set: bedroom in a shot list" in done.stderr


def test_a_shot_list_keeps_its_shots_when_a_member_is_renamed(cast_home: Path) -> None:
    week = cast_home / "week.yaml"
    week.write_text(
        "session: mia\nname: week\nshots:\n  - {pose: reading, with: rin}\n"
        "  - {pose: walking, with: [rin], set: bedroom}\n  - {pose: alone}\n",
        encoding="utf-8",
    )
    assert run_cli(cast_home, "batch", "run", str(week)).code == 0
    renamed = run_cli(cast_home, "character", "rename", "rin", "--slug", "rin-k")
    assert renamed.code == 0, renamed.stderr
    week.write_text(week.read_text(encoding="utf-8").replace("rin", "rin-k"), encoding="utf-8")
    again = run_cli(cast_home, "batch", "run", str(week), "--dry-run", "--json")
    assert again.code == 0, again.stderr
    states = [shot["state"] for shot in json.loads(again.stdout)["shots"]]
    assert states == ["done", "done", "done"]  # nothing made, nor paid for, again


def test_the_library_refuses_what_cannot_name_a_member_in_one_typed_line(
    cast_home: Path,
) -> None:
    from onmodel.errors import InputError

    with Studio.open(cast_home) as studio:
        session = studio.session("mia")
        assert session.plan("x", with_=None).request.cast == []
        for bad in (None, 1.5, True):
            with pytest.raises(InputError, match="named by a slug, a name, an id or a Character"):
                session.plan("x", with_=[bad])  # type: ignore[list-item]
        assert [image.image.id for image in studio.images(with_="rin")] == [
            studio.character("rin").anchor_image_id
        ]
        with pytest.raises(UsageError, match="'rin' is named twice in --with"):
            studio.start_session("mia", with_=["rin", "Rin"])
        assert [m.slug for m in studio.start_session("mia", with_="rin").members] == ["rin"]


def test_names_are_found_in_any_case_and_a_creature_is_kept_on_model_as_a_creature(
    cast_home: Path,
) -> None:
    with Studio.open(cast_home) as studio:
        studio.rename_character("rin", slug="rin-k")
        session = studio.session("mia")
        assert session.plan("x", with_=["rin"]).request.cast == ["mia", "rin-k"]  # Rin, by name
        assert studio.character("RIN-K").slug == "rin-k"
        studio.create_character("Max", prompt="a small dog", kind="creature", provider="preview")
        studio.add_to_cast(session, "max")
        alone = session.plan("chasing a ball", cast=["max"]).prompt
        assert "The same creature as in the reference image." in alone
        assert "Keep the creature exactly on model: same face and markings" in alone
        assert "hairstyle" not in alone
        assert "Keep the character exactly on model" in session.plan("waving").prompt
