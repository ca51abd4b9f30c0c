"""A provider is one class registered under an entry point; the core asks it, never its name.

The stub provider here lives in a throwaway distribution on ``sys.path`` (a ``.dist-info``
folder with its ``entry_points.txt``), which is how a separate plugin package would arrive, and
is then used through the studio with no edit to studio, capabilities, web or CLI.
"""

from __future__ import annotations

import importlib
import io
import sys
from collections.abc import Iterator
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
