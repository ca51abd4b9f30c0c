"""How long the offline preview takes to draw an ordinary shot (PNG included).

Usage::

    python benchmarks/preview_render.py [--repeat 20]

The preview draws every image the tests and ``onmodel demo`` make, so it must stay quick: for
each of a few typical requests (an anchor, a plain shot, a selfie with a dog at night, a busy
shot) it prints the best and the median of ``--repeat`` renders through
``PreviewProvider().generate``, after one warm-up render (font loading, imports).

Target: the best of each under 50 ms (it was a timed test until it failed on busy machines).
"""

from __future__ import annotations

import argparse
import statistics
import time

from onmodel.providers.base import GenerationRequest
from onmodel.providers.preview import PreviewProvider
from onmodel.sheet import ModelSheet, ShotRequest

SHEET = ModelSheet(
    hair="long hair",
    hair_color="#8b4513",
    eye_color="#1e90ff",
    skin_color="#ffe0c8",
    outfit="hoodie and jeans",
    outfit_colors=["#3366cc", "#333344"],
)
CASES = {
    "anchor": ("anchor", ShotRequest()),
    "plain shot": ("shot", ShotRequest()),
    "selfie, dog, night": (
        "shot",
        ShotRequest(pose="selfie", action="dog", scene="city at night"),
    ),
    "busy shot": (
        "shot",
        ShotRequest(
            pose="running",
            scene="beach at sunset",
            expression="laughing",
            outfit="red raincoat",
            action="playing guitar with a cat",
        ),
    ),
}


def request(kind: str, shot: ShotRequest) -> GenerationRequest:
    return GenerationRequest(
        kind="anchor" if kind == "anchor" else "shot",
        prompt="a girl",
        model="preview",
        params={},
        sheet=SHEET,
        request=shot,
        character_name="Mira",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="renders per case")
    args = parser.parse_args()
    provider = PreviewProvider()
    print(f"preview_render: best and median of {args.repeat} renders (target: best < 50 ms)")
    for label, (kind, shot) in CASES.items():
        one = request(kind, shot)
        provider.generate(one)  # warm-up
        times = []
        for _ in range(max(1, args.repeat)):
            started = time.perf_counter()
            provider.generate(one)
            times.append(time.perf_counter() - started)
        best, median = min(times) * 1000, statistics.median(times) * 1000
        print(f"  {label:20s} {best:7.1f} ms best, {median:7.1f} ms median", flush=True)


if __name__ == "__main__":
    main()
