"""The flux provider end to end, against the local FLUX.2 server (tests/fakeflux.py): what a
user types (the library and the CLI), what BFL is sent, what is recorded, and every failure
as one line with its row kept."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from cli_inprocess import run_cli
from fakeflux import KEY, FakeFlux
from onmodel.sheet import ModelSheet
from onmodel.studio import Studio

PALETTE_SET = ModelSheet(
    layout="bed on the left, window at the back",
    palette=["#f3e5c0", "#5b7fa6"],
)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeFlux]:
    with FakeFlux() as server:
        server.default_pending = 0
        monkeypatch.setenv("BFL_API_KEY", KEY)
        monkeypatch.setenv("ONMODEL_FLUX_URL", server.url)
        monkeypatch.setenv("ONMODEL_FLUX_MAX_RETRIES", "1")
        yield server


def rows(home: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(home / "onmodel.db") as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM image ORDER BY id").fetchall()


def cli_ok(home: Path, *args: str) -> str:
    outcome = run_cli(home, *args)
    assert outcome.code == 0, outcome.stderr
    return outcome.stdout


def new_series(home: Path, *session_args: str) -> None:
    cli_ok(
        home, "character", "new", "Mia", "--prompt", "a girl with red hair", "--provider", "flux"
    )
    cli_ok(home, "session", "new", "mia", "--provider", "flux", *session_args)


# ------------------------------------------------------------------------------ requests


def test_an_anchor_is_text_to_image_and_a_shot_sends_the_anchor_then_the_parent(
    studio: Studio, fake: FakeFlux
) -> None:
    studio.create_character("Mia", prompt="a girl with red hair", provider="flux")
    session = studio.start_session("mia", provider="flux")
    first = session.shot("waving")
    second = session.shot("sitting on a bench")
    anchor_post, first_post, second_post = fake.submissions()
    assert anchor_post.path == "/v1/flux-2-pro" and anchor_post.image_fields == []
    anchor = studio.character("mia").anchor
    assert anchor is not None
    assert first_post.image_bytes() == [anchor.read_bytes()]
    assert second_post.image_fields == ["input_image", "input_image_2"]
    assert second_post.image_bytes() == [anchor.read_bytes(), first.read_bytes()]
    assert fake.rejected == []
    row = rows(studio.paths.home)[-1]
    assert row["gen_id"] == row["response_id"] == list(fake.tasks)[-1]  # the task id
    params = json.loads(row["params"])
    assert params["endpoint"] == "/v1/flux-2-pro"
    assert params["input_images"] == 2
    assert [image["role"] for image in params["images"]] == ["anchor", "parent"]
    assert params["seed"] == second_post.json["seed"]
    assert second_post.json["input_image"] not in row["params"]  # never the base64
    returned = json.loads(row["returned"])
    assert returned["seed"] == second_post.json["seed"]
    assert "?" not in returned["result_url"]  # the signed query is never kept
    assert not fake.key_sent_to_delivery
    assert second.width and second.width > 0


def test_cli_session_defaults_to_flux_2_pro_and_records_the_reported_cost(
    isolated_home: Path, fake: FakeFlux
) -> None:
    new_series(isolated_home)
    shown = json.loads(cli_ok(isolated_home, "shot", "waving", "--json"))
    assert shown["model"] == "flux-2-pro"
    row = rows(isolated_home)[-1]
    returned = json.loads(row["returned"])
    # the fake reports its credits for the megapixels; 1 credit is $0.01
    assert row["cost_usd"] is not None
    assert float(row["cost_usd"]) == pytest.approx(returned["cost_credits"] * 0.01)
    assert {"input_mp", "output_mp"} <= set(returned)


def test_a_cast_shot_sends_every_anchor_in_order_then_the_parent_and_the_hex_palette(
    studio: Studio, fake: FakeFlux
) -> None:
    studio.create_character("Mia", prompt="a girl with red hair", provider="flux")
    studio.create_character("Rin", prompt="a boy with black hair", provider="flux")
    studio.create_character(
        "Bedroom", prompt="Mia's bedroom", sheet=PALETTE_SET, kind="set", provider="flux"
    )
    session = studio.start_session("mia", provider="flux", with_=["rin", "bedroom"])
    first = session.shot("playing guitar together", with_=["rin"], set_="bedroom")
    session.shot("waving goodbye", cast=["rin", "mia"], set_="bedroom")
    anchors = {}
    for slug in ("mia", "rin", "bedroom"):
        anchor = studio.character(slug).anchor
        assert anchor is not None
        anchors[slug] = anchor.read_bytes()
    one, two = fake.submissions()[-2:]
    assert one.image_bytes() == [anchors["mia"], anchors["rin"], anchors["bedroom"]]
    assert two.image_fields == ["input_image", "input_image_2", "input_image_3", "input_image_4"]
    assert two.image_bytes() == [
        anchors["rin"],
        anchors["mia"],
        anchors["bedroom"],
        first.read_bytes(),
    ]
    assert "#f3e5c0" in one.json["prompt"]  # FLUX.2 reads hex colours; the sheet's go as written
    assert fake.rejected == []


def test_a_seed_and_a_size_are_sent_and_recorded(isolated_home: Path, fake: FakeFlux) -> None:
    new_series(isolated_home)
    cli_ok(isolated_home, "shot", "waving", "--param", "seed=42", "--size", "1536x864")
    body = fake.submissions()[-1].json
    assert (body["seed"], body["width"], body["height"]) == (42, 1536, 864)
    row = rows(isolated_home)[-1]
    assert json.loads(row["params"])["seed"] == 42
    assert json.loads(row["returned"])["seed"] == 42


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--param", "seed=abc"), "seed must be a whole number"),
        (("--param", "safety_tolerance=9"), "safety_tolerance must be a whole number from 0"),
        (("--param", "sed=42"), "flux does not take sed"),
        (("--size", "1000x1000"), "not divisible by 16"),
        (("--size", "48x2048"), "at least 64 px"),
        (("--size", "4096x4096"), "over the maximum"),
        (("--quality", "high"), "does not take quality"),
    ],
)
def test_a_parameter_flux_refuses_is_one_line_before_anything_is_recorded_or_sent(
    isolated_home: Path, fake: FakeFlux, args: tuple[str, ...], expected: str
) -> None:
    new_series(isolated_home)
    before, sent = len(rows(isolated_home)), len(fake.requests)
    outcome = run_cli(isolated_home, "shot", "waving", *args)
    assert outcome.code != 0
    assert len(outcome.error_lines) == 1 and expected in outcome.error_lines[0]
    assert len(rows(isolated_home)) == before and len(fake.requests) == sent


def test_max_cost_refuses_or_allows_from_the_megapixel_prices(
    isolated_home: Path, fake: FakeFlux
) -> None:
    new_series(isolated_home)
    sent = len(fake.submissions())
    # under 1 MP out ($0.03), and the anchor at its own (tiny) size: $0.015 per MP of it
    anchor = next(row for row in rows(isolated_home) if row["kind"] == "anchor")
    inputs = Decimal("0.015") * anchor["width"] * anchor["height"] / 1_000_000
    cost = Decimal("0.03") + inputs
    refused = run_cli(isolated_home, "shot", "waving", "--size", "992x992", "--max-cost", "0.03")
    assert refused.code != 0
    assert refused.error_lines == [
        f"error: this shot could cost up to ${cost} (flux-2-pro), over --max-cost 0.03"
    ]
    assert len(fake.submissions()) == sent
    cli_ok(isolated_home, "shot", "waving", "--size", "992x992", "--max-cost", "0.031")
    assert len(fake.submissions()) == sent + 1


def test_a_palette_check_runs_on_a_flux_shot(isolated_home: Path, fake: FakeFlux) -> None:
    sheet = isolated_home.parent / "mia.yaml"
    sheet.write_text("hair_color: '#c0392b'\npalette: ['#c0392b', '#2e86c1']\n")
    cli_ok(
        isolated_home,
        "character", "new", "Mia", "--prompt", "a girl", "--sheet", str(sheet),
        "--provider", "flux",
    )  # fmt: skip
    cli_ok(isolated_home, "session", "new", "mia", "--provider", "flux")
    outcome = run_cli(isolated_home, "shot", "waving", "--check", "palette", "--json")
    shown = json.loads(outcome.stdout)
    # the fake draws one flat colour, so the check finds the take off model: exit 1
    assert (outcome.code, shown["checker"], shown["passed"]) == (1, "palette", False)
    assert len(shown["takes"]) == 1
    assert len(fake.submissions()) == 2


def test_a_shot_list_runs_through_flux_within_its_budget(
    isolated_home: Path, fake: FakeFlux, tmp_path: Path
) -> None:
    new_series(isolated_home)
    path = tmp_path / "week.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            defaults:
              size: 992x992
              params: {seed: 7}
            shots:
              - expression: crying
              - pose: playing guitar
            """
        )
    )
    # each shot's estimate is just over $0.03 (see the max-cost test): $0.05 covers one
    tight = run_cli(isolated_home, "batch", "run", str(path), "--budget", "0.05")
    assert tight.code != 0
    assert len(fake.submissions()) == 2  # the anchor and one shot
    cli_ok(isolated_home, "batch", "run", str(path), "--budget", "1")
    shots = [row for row in rows(isolated_home) if row["kind"] == "shot"]
    assert [row["status"] for row in shots] == ["succeeded", "succeeded"]
    assert all(fake.tasks[row["gen_id"]].body["seed"] == 7 for row in shots)


def test_providers_lists_flux_with_its_traits(isolated_home: Path, fake: FakeFlux) -> None:
    listed = json.loads(cli_ok(isolated_home, "providers", "--json"))
    flux = next(p for p in (listed if isinstance(listed, list) else listed["providers"])
                if p["name"] == "flux")  # fmt: skip
    assert flux["billed"] is True and flux["configured"] is True
    assert flux["max_input_images"] == 8


def test_flex_takes_steps_and_guidance_from_the_session(
    isolated_home: Path, fake: FakeFlux
) -> None:
    new_series(isolated_home, "--model", "flux-2-flex", "--param", "steps=30")
    cli_ok(isolated_home, "shot", "waving", "--param", "guidance=5.5")
    last = fake.submissions()[-1]
    assert last.path == "/v1/flux-2-flex"
    assert (last.json["steps"], last.json["guidance"]) == (30, 5.5)
    assert fake.rejected == []


def test_a_turnaround_of_a_flux_character_is_drawn_by_flux(
    isolated_home: Path, fake: FakeFlux
) -> None:
    """No --provider: the views come from the provider and model that drew the anchor, not
    the offline preview, so later FLUX shots send real views as references."""
    new_series(isolated_home, "--model", "flux-2-max")
    cli_ok(isolated_home, "character", "turnaround", "mia", "--views", "side")
    view = [row for row in rows(isolated_home) if row["kind"] == "view"]
    assert [(row["provider"], row["model"], row["status"]) for row in view] == [
        ("flux", "flux-2-pro", "succeeded")  # the anchor's model, not the session's
    ]
    assert fake.submissions()[-1].json["input_image"]  # the anchor, attached


def test_a_shot_list_s_provider_brings_its_own_model(
    isolated_home: Path, fake: FakeFlux, tmp_path: Path
) -> None:
    """A layer that changes the provider and names no model gets that provider's default,
    as ``shot --provider`` does: a preview session's list sends one shot to FLUX."""
    cli_ok(isolated_home, "character", "new", "Mia", "--prompt", "a girl", "--provider", "preview")
    cli_ok(isolated_home, "session", "new", "mia", "--provider", "preview", "--slug", "week")
    path = tmp_path / "week.yaml"
    path.write_text("shots:\n  - pose: waving\n  - pose: jumping\n    provider: flux\n")
    cli_ok(isolated_home, "batch", "run", str(path))
    shots = [row for row in rows(isolated_home) if row["kind"] == "shot"]
    made = {json.loads(row["request"])["pose"]: (row["provider"], row["model"]) for row in shots}
    assert made == {"waving": ("preview", "gpt-image-2"), "jumping": ("flux", "flux-2-pro")}


def test_session_set_refuses_what_every_later_shot_would(
    isolated_home: Path, fake: FakeFlux
) -> None:
    """Defaults a model refuses are refused when they are set, not by every shot after."""
    new_series(isolated_home, "--slug", "week")
    refused = run_cli(isolated_home, "session", "set", "week", "--param", "steps=30")
    assert refused.code == 2 and len(refused.error_lines) == 1
    assert "steps work only on flux-2-flex, not flux-2-pro" in refused.stderr
    cli_ok(isolated_home, "session", "set", "week", "--model", "flux-2-flex", "--param", "steps=30")
    back = run_cli(isolated_home, "session", "set", "week", "--model", "flux-2-pro")
    assert back.code == 2 and "clear a default with --param steps=" in back.stderr


def test_a_flux_session_shot_once_through_openai_takes_openai_s_model(
    isolated_home: Path, fake: FakeFlux, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_series(isolated_home)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # a dry run sends nothing
    dry = run_cli(isolated_home, "shot", "waving", "--provider", "openai-images", "--dry-run")
    assert dry.code == 0, dry.stderr
    assert "openai-images / gpt-image-2" in dry.stdout
