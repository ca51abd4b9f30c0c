"""How long the offline preview takes to draw a shot whose caption is long.

Usage::

    python benchmarks/preview_wrap.py [--lengths 100 2000 30000] [--against REV] [--timeout S]

For each length it renders one preview (``PreviewProvider().generate``, PNG included) of a
shot whose ``pose`` is either one word of that many characters or ordinary words adding up to
it, and prints the best of three wall times and how many times the caption's text was measured
(``getlength`` calls). Every case runs in its own process, stopped after ``--timeout`` seconds
(60 by default), so code that hangs shows as "> 60 s" instead of hanging the benchmark.

``--against REV`` runs the same cases on ``src/onmodel/providers/preview.py`` as it was at that
git revision, beside the working tree's: the before/after figures of a change, measured side
by side on one machine. With the character-by-character wrap (before issue 10) one
2,000-character word took 97 s of CPU, and 30,000 characters more than ten minutes.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODULE = "src/onmodel/providers/preview.py"


def _preview_module(rev: str | None) -> ModuleType:
    """The preview module of the working tree, or of ``rev`` loaded from git under its name."""
    if rev is None:
        return importlib.import_module("onmodel.providers.preview")
    source = subprocess.run(
        ["git", "show", f"{rev}:{MODULE}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    spec = importlib.util.spec_from_loader("onmodel.providers.preview", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    exec(compile(source, f"{rev}:{MODULE}", "exec"), module.__dict__)
    return module


def _measure_one(length: int, kind: str, rev: str | None) -> dict[str, Any]:
    """Render one case three times (in this process); best time and measurements per render."""
    from PIL import ImageFont

    from onmodel.providers.base import GenerationRequest
    from onmodel.sheet import ModelSheet, ShotRequest

    preview = _preview_module(rev)
    pose = "x" * length if kind == "word" else ("walking " * (length // 8 + 1))[:length]
    request = GenerationRequest(
        kind="shot",
        prompt="a girl",
        model="preview",
        character_name="Mira",
        sheet=ModelSheet(hair_color="#8b4513"),
        request=ShotRequest(pose=pose),
        params={},
    )
    calls = 0
    original = ImageFont.FreeTypeFont.getlength

    def counting(self: ImageFont.FreeTypeFont, text: str, *args: Any, **kwargs: Any) -> float:
        nonlocal calls
        calls += 1
        return original(self, text, *args, **kwargs)

    ImageFont.FreeTypeFont.getlength = counting  # type: ignore[method-assign, assignment]
    provider = preview.PreviewProvider()
    best = float("inf")
    for _ in range(3):
        calls = 0
        started = time.perf_counter()
        provider.generate(request)
        best = min(best, time.perf_counter() - started)
    return {"seconds": best, "measure_calls": calls}


def _case(length: int, kind: str, rev: str | None, timeout: float) -> str:
    command = [sys.executable, __file__, "--one", str(length), "--kind", kind]
    command += ["--against", rev] if rev else []
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return f"> {timeout:.0f} s (stopped)"
    if done.returncode != 0:
        return f"failed: {done.stderr.strip().splitlines()[-1:]}"
    figures = json.loads(done.stdout)
    return f"{figures['seconds'] * 1000:9.1f} ms, {figures['measure_calls']:6d} measurements"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 2000, 30000])
    parser.add_argument("--against", metavar="REV", help="also run the preview of git REV")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=("word", "words"), default="word", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(_measure_one(args.one, args.kind, args.against)))
        return
    sides: list[tuple[str, str | None]] = [("working tree", None)]
    if args.against:
        sides.insert(0, (args.against, args.against))
    for length in args.lengths:
        for kind in ("word", "words"):
            what = "one word" if kind == "word" else "words"
            for label, rev in sides:
                figure = _case(length, kind, rev, args.timeout)
                print(f"{length:6d} chars, {what:8s} {label:>14s}: {figure}", flush=True)


if __name__ == "__main__":
    main()
