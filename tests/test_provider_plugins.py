"""A provider is one class registered under an entry point; the core asks it, never its name.

The stub provider here lives in a throwaway distribution on ``sys.path`` (a ``.dist-info``
folder with its ``entry_points.txt``), which is how a separate plugin package would arrive, and
is then used through the studio with no edit to studio, capabilities, web or CLI.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import io
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image as PILImage

import onmodel.providers as registry
from onmodel.errors import UsageError
from onmodel.studio import Studio

PLUGIN = '''
from onmodel.providers.base import GenerationResult, ManualResult, Provider

CALLS = []


def _png():
    import io
    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 40, 40)).save(out, format="PNG")
    return out.getvalue()


class StubProvider(Provider):
    """Free, calls an (imaginary) edit route, takes at most 3 images."""

    name = "stub"
    billed = False
    max_input_images = 3

    def api_route(self, n_input_images):
        return "images.edit" if n_input_images else "images.generate"

    def generate(self, request):
        CALLS.append(request)
        return GenerationResult(data=_png(), format="png", sent_params={"model": request.model})


class PasteProvider(Provider):
    """Manual: its shots wait for the user to attach the picture."""

    name = "paste"
    billed = False
    manual = True
    offline = True

    def generate(self, request):
        return ManualResult(messages=[request.prompt])
'''

DIST_INFO = """\
Metadata-Version: 2.1
Name: onmodel-stub-plugin
Version: 1.0
"""

ENTRY_POINTS = """\
[onmodel.providers]
stub = onmodel_stub_plugin:StubProvider
paste = onmodel_stub_plugin:PasteProvider
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Install the stub plugin as a distribution would be, and let the registry find it."""
    site = tmp_path / "site"
    (site / "onmodel_stub_plugin.dist-info").mkdir(parents=True)
    (site / "onmodel_stub_plugin.py").write_text(PLUGIN)
    (site / "onmodel_stub_plugin.dist-info" / "METADATA").write_text(DIST_INFO)
    (site / "onmodel_stub_plugin.dist-info" / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "FACTORIES", registry._discover())
    yield importlib.import_module("onmodel_stub_plugin")
    sys.modules.pop("onmodel_stub_plugin", None)


def test_a_plugin_provider_is_found_through_its_entry_point(plugin: object) -> None:
    assert {"stub", "paste", "preview", "openai-images"} <= set(registry.provider_names())
    assert registry.is_manual("paste") and not registry.is_manual("stub")
    assert "paste" in registry.manual_provider_names()


def test_the_studio_uses_a_plugin_by_its_declared_traits(plugin: object, studio: Studio) -> None:
    mia = studio.create_character("Mia", prompt="a girl with red hair", provider="stub")
    assert mia.anchor is not None and mia.anchor.succeeded
    assert mia.anchor.row.cost_usd == "0"  # billed = False: free, whatever the price table says
    session = studio.start_session(mia, provider="stub")
    shot = session.shot(pose="waving")
    assert shot.succeeded and shot.row.provider == "stub"
    assert [i.role for i in plugin.CALLS[-1].inputs] == ["anchor"]  # type: ignore[attr-defined]

    ref = studio.paths.home / "ref.png"
    PILImage.new("RGB", (8, 8)).save(ref)
    with pytest.raises(Exception, match="takes at most 3"):  # its own max_input_images
        session.shot(pose="p", refs=[ref, ref, ref])


def test_a_manual_plugin_waits_for_attach(plugin: object, studio: Studio, tmp_path: Path) -> None:
    mia = studio.create_character("Mia", prompt="a girl with red hair", provider="stub")
    session = studio.start_session(mia, provider="paste")
    pending = session.shot(pose="waving")
    assert pending.status == "pending"
    with pytest.raises(UsageError, match="onmodel attach"):  # never "stale": it waits
        studio.retry(pending.id)
    picture = tmp_path / "saved.png"
    buffer = io.BytesIO()
    PILImage.new("RGB", (16, 16), (1, 2, 3)).save(buffer, format="PNG")
    picture.write_bytes(buffer.getvalue())
    assert studio.attach(pending.id, picture).succeeded


def test_the_core_names_no_provider() -> None:
    """The issue's check: provider names appear only under providers/."""
    source = Path(__file__).resolve().parents[1] / "src" / "onmodel"
    names = ('"openai-images"', '"openai-responses"', '"preview"', '"chatgpt"')
    offenders = [
        f"{path.relative_to(source)}: {name}"
        for path in source.rglob("*.py")
        if "providers" not in path.relative_to(source).parts
        for name in names
        if name in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_providers_read_the_studio_s_capability_table(studio: Studio) -> None:
    """``Studio.open(home)`` and its providers decide from the same ``home/models.yaml``."""
    studio.paths.models_file.write_text("models:\n  gpt-image-2:\n    max_prompt_chars: 1234\n")
    capability = studio.provider("openai-images").context.capability("gpt-image-2")
    assert capability is not None and capability.max_prompt_chars == 1234


TABLES_PLUGIN = '''
from decimal import Decimal
import io

from PIL import Image

from onmodel.providers.base import GenerationResult, Provider

CALLS = []


def _png(colour):
    out = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(out, format="PNG")
    return out.getvalue()


class ChatProvider(Provider):
    """A paid, stateless chat API: resends its last two turns, prices by the picture."""

    name = "chatstub"
    key_env = "CHATSTUB_KEY"
    also_key_env = ("CHATSTUB_OTHER_KEY",)
    keeps_conversation = True
    history_turns = 2
    default_model = "stub-image-1"
    max_input_images = 5

    def api_route(self, n_input_images):
        return "stub.chat"

    def input_limit(self, params):
        return int(params.get("slots", self.max_input_images))

    def param_problems(self, params, capability):
        found = super().param_problems(params, capability)
        if "slots" in params and not isinstance(params["slots"], int):
            found.append("slots must be a whole number")
        return found

    def estimate_max_cost(self, request, prices):
        price = prices.get(request.model)
        return None if price is None else price.image_first_megapixel

    def cost(self, model, usage, returned, prices):
        price = prices.get(model)
        credits = returned.get("credits")
        if price is None or credits is None:
            return None
        return Decimal(str(credits)) * price.usd_per_credit

    def generate(self, request):
        CALLS.append(request)
        sent = {
            "model": request.model,
            "conversation_turns": request.conversation_turns(),
            **request.params,
        }
        return GenerationResult(
            data=_png((10 * len(CALLS) % 255, 90, 90)),
            format="png",
            sent_params=sent,
            returned={"credits": 4, "said": "here you are"},
        )
'''

TABLES_MODELS = """\
routes: [stub.chat]
models:
  stub-image-1:
    family: stub
    routes: [stub.chat]
    sizes: [auto, 1024x1024]
    qualities: []
    max_input_images: 4
"""

TABLES_PRICES = """\
models:
  stub-image-1:
    source: made up for the test
    image_first_megapixel: "0.05"
    usd_per_credit: "0.01"
"""


@pytest.fixture
def tables_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A plugin that brings its own model and price tables, as a separate package would."""
    from onmodel import capabilities

    site = tmp_path / "tables-site"
    package = site / "onmodel_chatstub"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(TABLES_PLUGIN)
    (package / "models.yaml").write_text(TABLES_MODELS)
    (package / "prices.yaml").write_text(TABLES_PRICES)
    info = site / "onmodel_chatstub.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: onmodel-chatstub\nVersion: 1\n")
    (info / "entry_points.txt").write_text(
        "[onmodel.providers]\nchatstub = onmodel_chatstub:ChatProvider\n\n"
        "[onmodel.model_tables]\nchatstub = onmodel_chatstub\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("CHATSTUB_OTHER_KEY", "not-a-real-key")

    def forget() -> None:
        capabilities.plugin_tables.cache_clear()
        capabilities._capabilities_for.cache_clear()
        capabilities._prices_for.cache_clear()

    forget()
    monkeypatch.setattr(registry, "FACTORIES", registry._discover())
    yield importlib.import_module("onmodel_chatstub")
    sys.modules.pop("onmodel_chatstub", None)
    forget()


def test_a_plugin_s_own_tables_check_and_price_its_shots(
    tables_plugin: object, studio: Studio
) -> None:
    """Its models are in the table, checked by its rules; its session takes its default
    model; its own pricing is what --max-cost and the recorded cost use."""
    from onmodel.capabilities import load_capabilities
    from onmodel.errors import BudgetError, ValidationError

    table = load_capabilities(studio.paths.models_file)
    assert "stub-image-1" in table and "gpt-image-2" in table
    assert any("chatstub plugin's models.yaml" in source for source in table.sources)

    mia = studio.create_character("Mia", prompt="a girl with red hair", provider="chatstub")
    assert mia.anchor is not None and mia.anchor.row.model == "stub-image-1"
    assert mia.anchor.row.cost_usd == "0.04"  # 4 credits the API reported, at $0.01
    session = studio.start_session(mia, provider="chatstub")
    assert session.model == "stub-image-1"
    with pytest.raises(ValidationError, match="does not take quality"):
        session.plan(pose="waving", quality="high")
    with pytest.raises(BudgetError, match=r"up to \$0.05"):
        session.plan(pose="waving", max_cost=Decimal("0.01"))
    assert session.plan(pose="waving", max_cost=Decimal("0.05")).estimated_max_cost == "0.05"
    # a model of another provider's routes is refused on this one, naming both
    with pytest.raises(ValidationError, match=r"does not work on stub\.chat"):
        session.plan(pose="waving", model="gpt-image-2")


def test_a_user_can_override_a_plugin_s_model(tables_plugin: object, studio: Studio) -> None:
    from onmodel.capabilities import load_capabilities

    studio.paths.models_file.write_text("models:\n  stub-image-1:\n    max_prompt_chars: 99\n")
    found = load_capabilities(studio.paths.models_file).get("stub-image-1")
    assert found.max_prompt_chars == 99 and found.routes == ("stub.chat",)


def test_an_unknown_route_in_a_table_is_named(tables_plugin: object, studio: Studio) -> None:
    from onmodel.capabilities import load_capabilities

    studio.paths.models_file.write_text("models:\n  stub-image-1:\n    routes: [stub.chta]\n")
    with pytest.raises(UsageError, match=r"models.stub-image-1.routes: unknown route 'stub.chta'"):
        load_capabilities(studio.paths.models_file)


def test_a_stateless_chat_gets_its_last_turns_again(tables_plugin: object, studio: Studio) -> None:
    """history_turns = 2: each shot is sent the two turns before it (the parent last), read
    from the parent's own record, and a branch from an older image gets that image's turns."""
    mia = studio.create_character("Mia", prompt="a girl with red hair", provider="chatstub")
    session = studio.start_session(mia, provider="chatstub")
    calls = tables_plugin.CALLS  # type: ignore[attr-defined]
    first = session.shot(pose="waving")
    assert calls[-1].history == ()  # from the anchor: a new conversation
    second = session.shot(pose="sitting")
    assert [turn.image_id for turn in calls[-1].history] == [first.id]
    third = session.shot(pose="jumping")
    assert [turn.image_id for turn in calls[-1].history] == [first.id, second.id]
    assert calls[-1].history[-1].prompt == second.row.prompt
    assert calls[-1].history[-1].output.path == second.path
    assert calls[-1].history[-1].returned["said"] == "here you are"
    session.shot(pose="resting")
    assert [turn.image_id for turn in calls[-1].history] == [second.id, third.id]
    session.shot(pose="branching", from_image=first.id)
    assert [turn.image_id for turn in calls[-1].history] == [first.id]


def test_a_provider_s_input_limit_fits_the_shot(tables_plugin: object, studio: Studio) -> None:
    """The provider's own limit for these parameters (a workflow's image slots) is what a
    shot's images are fitted to, before anything is recorded."""
    mia = studio.create_character("Mia", prompt="a girl with red hair", provider="chatstub")
    session = studio.start_session(mia, provider="chatstub", params={"slots": 1})
    session.shot(pose="waving")
    with pytest.raises(UsageError, match="takes at most 1"):
        session.plan(pose="sitting")  # the anchor and the parent: two images
    assert len(session.plan(pose="sitting", from_image=mia.anchor.id).inputs) == 1


def test_a_provider_switch_takes_that_provider_s_default_model(
    tables_plugin: object, studio: Studio
) -> None:
    mia = studio.create_character("Mia", prompt="a girl with red hair", provider="preview")
    session = studio.start_session(mia, provider="preview")
    assert session.model == "gpt-image-2"
    plan = session.plan(pose="waving", provider="chatstub")
    assert plan.model == "stub-image-1"  # gpt-image-2 does not run on stub.chat
    moved = studio.update_session(session, provider="chatstub")
    assert moved.model == "stub-image-1"
    back = studio.update_session(session, provider="preview")
    assert back.model == "stub-image-1"  # the preview draws any model: kept


def test_onmodel_providers_lists_traits_and_readiness(
    tables_plugin: object, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from cli_inprocess import run_cli

    listed = run_cli(isolated_home, "providers", "--json")
    assert listed.code == 0, listed.stderr
    found = {each["name"]: each for each in json.loads(listed.stdout)}
    stub = found["chatstub"]
    assert stub["key_env"] == ["CHATSTUB_KEY", "CHATSTUB_OTHER_KEY"]
    assert stub["configured"] is True  # the second variable holds a key
    assert stub["conversation"] is True and stub["billed"] is True
    assert stub["max_input_images"] == 5 and stub["default_model"] == "stub-image-1"
    assert found["openai-images"]["configured"] is False
    assert found["preview"]["billed"] is False
    monkeypatch.delenv("CHATSTUB_OTHER_KEY")
    table = run_cli(isolated_home, "providers")
    assert table.code == 0
    assert "set CHATSTUB_KEY or CHATSTUB_OTHER_KEY" in table.stdout


def test_a_broken_plugin_is_listed_with_its_reason(
    plugin: object, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from cli_inprocess import run_cli

    broken = registry._EntryFactory(
        importlib.metadata.EntryPoint("broken", "no_such_module_here:Nope", "onmodel.providers")
    )
    monkeypatch.setitem(registry.FACTORIES, "broken", broken)
    listed = run_cli(isolated_home, "providers", "--json")
    assert listed.code == 0, listed.stderr
    found = {each["name"]: each for each in json.loads(listed.stdout)}
    assert found["broken"]["configured"] is False
    assert "cannot load" in found["broken"]["detail"]
    assert found["stub"]["billed"] is False  # the others are still listed


def test_params_on_the_command_line(isolated_home: Path) -> None:
    """--param KEY=VALUE reads numbers and true/false as such, keeps the rest as text, and
    refuses a malformed or repeated one with one line."""
    from cli_inprocess import run_cli

    made = run_cli(isolated_home, "character", "new", "Mia", "--prompt", "a girl")
    assert made.code == 0, made.stderr
    started = run_cli(
        isolated_home,
        *("session", "new", "mia", "--json", "--size", "1024x1024"),
        *("--param", "seed=42", "--param", "note=2026-01-01", "--param", "upsample=true"),
        *("--param", "ratio=16:9", "--param", 'label="42"'),
    )
    assert started.code == 0, started.stderr
    import json

    params = json.loads(started.stdout)["params"]
    assert params == {
        **{"seed": 42, "note": "2026-01-01", "upsample": True, "size": "1024x1024"},
        **{"ratio": "16:9", "label": "42"},  # never YAML 1.1's base-60 969; quoted: text
    }
    for bad, said in (
        (("--param", "seed"), "write KEY=VALUE"),
        (("--param", "a=1", "--param", "a=2"), "given twice"),
        (("--param", "size=auto", "--size", "auto"), "given twice"),
    ):
        outcome = run_cli(isolated_home, "session", "new", "mia", *bad)
        assert outcome.code != 0 and said in outcome.stderr
        assert len(outcome.error_lines) == 1
    slug = json.loads(started.stdout)["slug"]
    removed = run_cli(isolated_home, "session", "set", slug, "--param", "seed=")
    assert removed.code == 0, removed.stderr
    assert "seed" not in removed.stdout


def test_a_batch_holds_its_starts_for_a_rate_limit_s_retry_after(
    studio: Studio, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A rate limit that says how long to wait holds the batch's next start at least that
    long, instead of sending the next shot into the same limit; the limited shot is recorded
    failed (kind rate_limit) for --retry-failed, the others made."""
    import time

    from onmodel.batch import run_batch
    from onmodel.providers.base import GenerationResult, Provider, ProviderError
    from onmodel.providers.preview import PreviewProvider

    starts: list[float] = []
    failed_at: list[float] = []

    class Limited(Provider):
        name = "limited"
        billed = False

        def generate(self, request: object) -> GenerationResult:
            starts.append(time.monotonic())
            if len(starts) == 1:
                failed_at.append(time.monotonic())
                raise ProviderError("slow down", kind="rate_limit", retry_after=0.3)
            return PreviewProvider(self.context).generate(request)  # type: ignore[arg-type]

    monkeypatch.setitem(registry.FACTORIES, "limited", lambda context: Limited(context))
    mia = studio.create_character("Mia", prompt="a girl with red hair", provider="preview")
    studio.start_session(mia, provider="limited", slug="week")
    shots = tmp_path / "list.yaml"
    shots.write_text("session: week\nshots:\n  - pose: a\n  - pose: b\n  - pose: c\n")
    report = run_batch(studio, shots, concurrency=1)
    assert (report.succeeded, report.failed) == (2, 1)
    assert starts[1] - failed_at[0] >= 0.29  # held, not sent straight into the limit
    failed = [i for i in studio.session_images("week") if i.status == "failed"]
    assert [i.row.error_type for i in failed] == ["rate_limit"]


@pytest.mark.parametrize(
    ("failure", "recorded"),
    [
        ({"kind": "invalid_request"}, "0"),  # refused before the model answered: free
        ({"kind": "rate_limit"}, "0"),
        ({"kind": "timeout"}, None),  # may have been billed: unknown, never a wrong zero
        ({"kind": "moderation", "usage": {"cost_credits": 3}}, "0.03"),  # priced as reported
    ],
)
def test_a_failed_shot_records_what_it_cost(
    tables_plugin: object,
    studio: Studio,
    monkeypatch: pytest.MonkeyPatch,
    failure: dict[str, object],
    recorded: str | None,
) -> None:
    from onmodel.errors import GenerationError
    from onmodel.providers.base import ProviderError

    module = tables_plugin
    mia = studio.create_character("Mia", prompt="a girl with red hair", provider="chatstub")
    session = studio.start_session(mia, provider="chatstub")

    def fail(self: object, request: object) -> None:
        raise ProviderError("no", **failure)  # type: ignore[arg-type]

    def cost(self: object, model: str, usage: dict, returned: dict, prices: object) -> Decimal:
        return Decimal(usage["cost_credits"]) / 100

    monkeypatch.setattr(module.ChatProvider, "generate", fail)  # type: ignore[attr-defined]
    monkeypatch.setattr(module.ChatProvider, "cost", cost)  # type: ignore[attr-defined]
    with pytest.raises(GenerationError) as raised:
        session.shot(pose="waving")
    assert studio.image(raised.value.image_id or 0).row.cost_usd == recorded


def test_a_provider_s_preflight_refuses_before_anything_is_recorded(
    tables_plugin: object, studio: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onmodel.providers.base import ProviderError

    module = tables_plugin
    mia = studio.create_character("Mia", prompt="a girl with red hair", provider="chatstub")
    session = studio.start_session(mia, provider="chatstub")
    before = len(studio.session_images(session))

    def preflight(self: object) -> None:
        raise ProviderError("CHATSTUB_TIMEOUT='soon' is not a number of seconds", kind="config")

    monkeypatch.setattr(module.ChatProvider, "preflight", preflight)  # type: ignore[attr-defined]
    with pytest.raises(ProviderError, match="CHATSTUB_TIMEOUT"):
        session.shot(pose="waving")
    assert len(studio.session_images(session)) == before
