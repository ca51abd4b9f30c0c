"""How a long series' lineage outputs grow with its size: 1k, 10k and 100k images.

Usage::

    python benchmarks/lineage_scale.py [--sizes 1000,10000,100000] [--keep DIR]
        [--timeout 300] [--export-up-to 10000]

Builds one session per size the way a studio's series grows: half the images on a main chain
(each shot made from the last), the rest in branches of 1-20 shots hanging off main-chain
images; every image has a small real PNG in the blob store and the references a real shot
records (the anchor, and its parent). One shot in ten also shows Max, a creature of the
session's cast (its ``image_cast`` rows, and his anchor among its references), so
``images --with max`` pages through a tenth of the series. The rows go through the store
layer (``insert_rows``, the statements a shot makes) in one transaction: making 100,000 shots
one by one would take hours.

Then times each operation the way a user meets it: CLI commands in a fresh interpreter (wall
time including start-up, peak memory of that process), and the web pages through the server's
WSGI app in this process (the server's own start-up is not a page's cost). Prints a table with
the growth ratio 10k -> 100k beside each row, and the issue's targets.

Targets (2-core machine, 100k images): ``tree``, ``show <deepest>``, ``session list`` and
``session show`` each under 1 s; the web session page, image page and unchanged poll under 300,
300 and 50 ms; ``tree --all`` and ``tree --json`` linear (10k -> 100k ratio <= 12); export of
10k images under 60 s with cached thumbnails, peak memory under 300 MB.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from onmodel.status import ImageStatus
from onmodel.store.models import ImageCastRow, ImageReferenceRow, ImageRow, SessionRow
from onmodel.store.rows import insert_rows, update_row
from onmodel.studio import Studio

PNG_VARIANTS = 64
INSERT_CHUNK = 5_000

# Runs a command in a child and prints the child's peak memory (KiB on Linux) on stderr's last
# line, so each CLI operation's memory is its own, not the benchmark's.
MEASURE = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[2:], timeout=float(sys.argv[1]))\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(f'\\nPEAK {peak}', file=sys.stderr)\n"
    "sys.exit(done.returncode)\n"
)


@dataclass(frozen=True)
class Built:
    home: Path
    session_slug: str
    head_id: int
    deepest_id: int
    images: int


def small_pngs(count: int) -> list[bytes]:
    """Distinct 48x48 PNGs (a few hundred bytes each), as a provider would return."""
    pictures = []
    for index in range(count):
        colour = ((index * 37) % 256, (index * 91) % 256, (index * 53) % 256)
        picture = PILImage.new("RGB", (48, 48), colour)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        pictures.append(buffer.getvalue())
    return pictures


def build(home: Path, size: int, seed: int = 12) -> Built:
    """A session of ``size`` images (anchor included) shaped as the module docstring says."""
    studio = Studio.open(home)
    character = studio.create_character("Rin", prompt="a girl with red hair", provider="preview")
    max_ = studio.create_character(
        "Max", prompt="a small brown dog", kind="creature", provider="preview"
    )
    session = character.start_session(
        provider="preview", title=f"{size:,} images", with_=[max_.slug]
    )
    anchor, max_anchor = character.anchor, max_.anchor
    assert anchor is not None and anchor.sha256 is not None
    assert max_anchor is not None and max_anchor.sha256 is not None
    blobs = [studio.blobs.put(data, "png") for data in small_pngs(PNG_VARIANTS)]
    rng = random.Random(seed)
    next_id = max_anchor.id + 1
    main_length = size // 2
    main_chain = [anchor.id]
    parents: list[int] = []  # for each new image, in id order
    for _ in range(main_length - 1):
        parents.append(main_chain[-1])
        main_chain.append(next_id + len(parents) - 1)
    while len(parents) < size - 1:
        start = rng.choice(main_chain)
        for _ in range(min(rng.randint(1, 20), size - 1 - len(parents))):
            parents.append(start)
            start = next_id + len(parents) - 1
    images: list[dict[str, Any]] = []
    references: list[dict[str, Any]] = []
    casts: list[dict[str, Any]] = []
    with studio.engine.begin() as conn:
        for offset, parent_id in enumerate(parents):
            image_id = next_id + offset
            blob = blobs[image_id % len(blobs)]
            images.append(
                {
                    "id": image_id,
                    "character_id": character.id,
                    "session_id": session.id,
                    "parent_id": parent_id,
                    "kind": "shot",
                    "status": ImageStatus.SUCCEEDED.value,
                    "request": {"expression": f"step {image_id}", "pose": "waving"},
                    "template_name": "shot.j2",
                    "prompt": f"Rin, a girl with red hair, waving, step {image_id}",
                    "provider": "preview",
                    "model": "",
                    "sha256": blob.sha256,
                    "format": "png",
                    "width": 48,
                    "height": 48,
                    "byte_size": blob.size,
                }
            )
            shown = [character.id, max_.id] if image_id % 10 == 0 else [character.id]
            casts.extend(
                {"image_id": image_id, "character_id": member, "position": position}
                for position, member in enumerate(shown)
            )
            sent = [("anchor", anchor.id, anchor.sha256)]
            if len(shown) > 1:
                sent.append(("anchor", max_anchor.id, max_anchor.sha256))
            if parent_id != anchor.id:
                sent.append(("parent", parent_id, blobs[parent_id % len(blobs)].sha256))
            references.extend(
                {
                    "image_id": image_id,
                    "position": position,
                    "role": role,
                    "ref_image_id": ref_id,
                    "sha256": sha256,
                    "format": "png",
                }
                for position, (role, ref_id, sha256) in enumerate(sent)
            )
            if len(images) >= INSERT_CHUNK:
                insert_rows(conn, ImageRow, images)
                insert_rows(conn, ImageReferenceRow, references)
                insert_rows(conn, ImageCastRow, casts)
                images, references, casts = [], [], []
        insert_rows(conn, ImageRow, images)
        insert_rows(conn, ImageReferenceRow, references)
        insert_rows(conn, ImageCastRow, casts)
        head = main_chain[-1]
        update_row(conn, SessionRow, session.id, {"head_image_id": head})
    deepest = head  # the main chain is the longest path: half the images
    studio.close()
    return Built(home, session.slug, head, deepest, size)


@dataclass
class Measured:
    seconds: float | None  # None: failed or timed out
    peak_mib: float | None = None
    note: str = ""
    body: bytes = b""


def run_cli(built: Built, args: list[str], timeout: float) -> Measured:
    env = {**os.environ, "ONMODEL_HOME": str(built.home), "COLUMNS": "120"}
    command = [sys.executable, "-c", MEASURE, str(timeout), sys.executable, "-m", "onmodel", *args]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, env=env, capture_output=True, timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        return Measured(None, note=f"killed at {timeout:.0f} s")
    elapsed = time.perf_counter() - started
    stderr = done.stderr.decode(errors="replace")
    peak = None
    if "PEAK " in stderr:
        stderr, _, tail = stderr.rpartition("PEAK ")
        peak = int(tail.strip()) / 1024
    if "TimeoutExpired" in stderr:
        return Measured(None, peak, f"killed at {timeout:.0f} s")
    if done.returncode != 0:
        last = stderr.strip().splitlines()[-1:] or ["?"]
        return Measured(None, peak, f"exit {done.returncode}: {last[0][:60]}")
    return Measured(elapsed, peak, f"{len(done.stdout):,} B out")


def web_timer(built: Built) -> tuple[Studio, Any, Callable[[str], Measured]]:
    """Times GETs through a fresh server's WSGI app (what one request costs, no socket)."""
    from onmodel.web.app import GalleryApp

    studio = Studio.open(built.home)
    app = GalleryApp(studio)

    def get(path_and_query: str) -> Measured:
        path, _, query = path_and_query.partition("?")
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "HTTP_HOST": "127.0.0.1:8000",
            "wsgi.input": io.BytesIO(),
            "wsgi.url_scheme": "http",
        }
        status: list[str] = []
        started = time.perf_counter()
        body = b"".join(app(environ, lambda s, h, *a: status.append(s)))
        elapsed = time.perf_counter() - started
        if not status or not status[0].startswith("200"):
            return Measured(None, note=f"HTTP {status[0] if status else '?'}")
        return Measured(elapsed, note=f"{len(body):,} B", body=body)

    return studio, app, get


def operations(built: Built, timeout: float, export_up_to: int) -> dict[str, Measured]:
    slug = built.session_slug
    found: dict[str, Measured] = {}
    cli = {
        "tree": ["tree", slug],
        "tree --all": ["tree", slug, "--all"],
        "tree --json": ["tree", slug, "--json"],
        "show <deepest>": ["show", str(built.deepest_id)],
        "session list": ["session", "list"],
        "session show": ["session", "show", slug],
        "images --with max": ["images", "--with", "max"],
        "images --with max --limit 10000": ["images", "--with", "max", "--limit", "10000"],
    }
    for name, args in cli.items():
        found[name] = run_cli(built, args, timeout)
    if built.images <= export_up_to:
        target = built.home.parent / f"export-{built.images}"
        shutil.rmtree(target, ignore_errors=True)
        run_cli(built, ["export", slug, "--to", str(target)], timeout)  # thumbnails cached
        shutil.rmtree(target, ignore_errors=True)
        found["export (cached thumbs)"] = run_cli(
            built, ["export", slug, "--to", str(target)], timeout
        )
    from onmodel.web.cache import SessionCache

    studio, app, get = web_timer(built)
    # A fresh process's first page also compiles the templates and warms the imports: that
    # is the server's start, not a page's cost. A session's first view on a running server
    # reads its lineage and totals; later views reuse what has not changed.
    found["web first request of a process"] = get(f"/sessions/{slug}")
    app.cache = SessionCache(studio)
    found["web session page (not cached)"] = get(f"/sessions/{slug}")
    found["web session page"] = get(f"/sessions/{slug}")
    found["web image page <deepest>"] = get(f"/images/{built.deepest_id}")
    first = get(f"/api/sessions/{slug}")
    version = json.loads(first.body).get("version", "") if first.body else ""
    found["web poll (unchanged)"] = get(f"/api/sessions/{slug}?v={version}")
    studio.annotate_image(built.deepest_id, starred=True)
    found["web poll (after a star)"] = get(f"/api/sessions/{slug}?v={version}")
    studio.annotate_image(built.deepest_id, starred=False)
    return found


def _cell(measured: Measured | None) -> str:
    if measured is None:
        return "-"
    if measured.seconds is None:
        return measured.note
    text = f"{measured.seconds:.2f} s"
    if measured.peak_mib is not None:
        text += f", {measured.peak_mib:.0f} MB"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the stores here")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--export-up-to", type=int, default=10_000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    root = args.keep or Path(tempfile.mkdtemp(prefix="onmodel-lineage-"))
    subprocess.run([sys.executable, "-m", "compileall", "-q", "src"], check=True)
    results: dict[int, dict[str, Measured]] = {}
    for size in sizes:
        home = root / f"home-{size}"
        marker = home / "built.json"
        if marker.exists():
            built = Built(**{**json.loads(marker.read_text()), "home": home})
        else:
            shutil.rmtree(home, ignore_errors=True)
            started = time.perf_counter()
            built = build(home, size)
            marker.write_text(json.dumps({k: v for k, v in built.__dict__.items() if k != "home"}))
            print(f"built {size:,} images in {time.perf_counter() - started:.1f} s", flush=True)
        results[size] = operations(built, args.timeout, args.export_up_to)
        for name, measured in results[size].items():
            extra = measured.note if measured.seconds is not None else ""
            print(f"  {size:>7,}  {name:26s} {_cell(measured):28s} {extra}", flush=True)
    names = list(dict.fromkeys(n for r in results.values() for n in r))
    print()
    header = "| operation | " + " | ".join(f"{s:,}" for s in sizes) + " | ratio 10k→100k |"
    print(header)
    print("|" + "---|" * (len(sizes) + 2))
    for name in names:
        cells = [_cell(results[s].get(name)) for s in sizes]
        ratio = "-"
        small, large = results.get(10_000, {}).get(name), results.get(100_000, {}).get(name)
        if small and large and small.seconds and large.seconds:
            ratio = f"{large.seconds / small.seconds:.1f}"
        print(f"| {name} | " + " | ".join(cells) + f" | {ratio} |")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
