"""How close ``onmodel batch run`` comes to the ideal, against the local OpenAI-compatible server.

Usage::

    python benchmarks/batch_throughput.py --n 200 --latency 0.5 --concurrency 8 [--rpm R]

What it does, all on 127.0.0.1:

1. starts ``tests/fakeopenai.py`` in its own process with ``--latency L`` (so the server's
   work never competes with the client for a GIL); it answers each request L seconds after
   receiving it, and the report shows the mean it kept;
2. makes a throwaway onmodel home with an imported character and sessions on the real
   ``openai-images`` provider pointed at that server;
3. runs N shots through the real CLI path (``python -m onmodel batch run FILE -c C``, a
   subprocess) ``--runs`` times, each in a fresh session, and reports the median run's wall
   time (and every run's), the ideal bound ``max(N·L/C, N/rpm)`` and their ratio, plus the
   run's own elapsed time (without interpreter start-up): start-up is CPU-bound, and where
   the CPU's speed varies from second to second one run alone says little;
4. runs the naive loop illustrators use today — one ``session.shot()`` after another, without
   even the ``sleep(1)`` — on a sample of shots and scales it to N;
5. measures the local overhead per shot with an instant in-process provider: compose (plan,
   validation, estimates), database and blob writes, in milliseconds, and the client-side cost
   of one provider call at zero server latency;
6. reports the CLI process's peak memory (max RSS), beside that of a batch a quarter the size
   run the same way: images go to disk as they arrive, so memory must not grow with N.

onmodel's own modules are byte-compiled first, as ``pip install`` does for a wheel: an editable
checkout under ``PYTHONDONTWRITEBYTECODE=1`` (set on some machines) would otherwise compile
them from source on every start, which no installed copy does.

Target at N=200, L=0.5 s, C=8: within 1.15x of the bound.
"""

from __future__ import annotations

import argparse
import compileall
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "fakeopenai.py"


@dataclass
class Server:
    process: subprocess.Popen[str]
    base_url: str

    def control(self, path: str, payload: dict[str, Any]) -> None:
        root = self.base_url.removesuffix("/v1")
        request = urllib.request.Request(
            f"{root}/_fake/{path}",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def stats(self) -> dict[str, Any]:
        return self._get("stats")  # type: ignore[no-any-return]

    def seconds_per_request(self) -> float:
        """The mean time the server took from receiving a request to answering it."""
        done = [r for r in self._get("requests") if r["finished_at"] is not None]
        return statistics.fmean(r["finished_at"] - r["received_at"] for r in done)

    def _get(self, path: str) -> Any:
        root = self.base_url.removesuffix("/v1")
        with urllib.request.urlopen(f"{root}/_fake/{path}", timeout=10) as answer:
            return json.loads(answer.read())


@contextmanager
def fake_server(latency: float) -> Iterator[Server]:
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "--port", "0", "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        if not base_url.startswith("http"):
            raise RuntimeError(f"the test server did not start (said {base_url!r})")
        yield Server(process, base_url)
    finally:
        process.terminate()
        process.wait(10)


def compile_onmodel() -> None:
    """Byte-compile the onmodel package the CLI will import, where its bytecode is missing."""
    import onmodel

    compileall.compile_dir(Path(onmodel.__file__).parent, quiet=1)


def tiny_png(size: int = 256) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (240, 160, 75)).save(buffer, format="PNG")
    return buffer.getvalue()


def set_up_home(home: Path, runs: int) -> None:
    """A character from an imported anchor (no API call) and a session on openai-images."""
    from onmodel.studio import Studio

    with Studio.open(home) as studio:
        anchor = home / "anchor.png"
        anchor.write_bytes(tiny_png())
        studio.import_character("Mia", anchor, prompt="a cheerful girl with orange hair")
        for slug in (*(f"bench-{i}" for i in range(runs)), "small", "naive"):
            studio.start_session(
                "mia",
                slug=slug,
                provider="openai-images",
                model="gpt-image-2",
                params={"size": "1024x1024", "quality": "low"},
            )


def write_list(path: Path, n: int, session: str) -> None:
    lines = [f"session: {session}", "shots:"]
    lines += [f"  - pose: pose number {i}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_cli(home: Path, shot_list: Path, args: argparse.Namespace, env: dict[str, str]) -> Any:
    command = [sys.executable, "-m", "onmodel", "batch", "run", str(shot_list)]
    command += ["--concurrency", str(args.concurrency), "--progress", "none", "--json"]
    if args.rpm:
        command += ["--rpm", str(args.rpm)]
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak, not all children's
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"batch run failed ({process.returncode}): {err.read().strip()}")
        return json.loads(out.read()), wall, usage.ru_maxrss


def naive_loop(home: Path, sample: int) -> float:
    """Seconds per shot of a plain loop of ``session.shot()`` calls (today's workflow)."""
    from onmodel.studio import Studio

    with Studio.open(home) as studio:
        session = studio.session("naive")
        started = time.perf_counter()
        for i in range(sample):
            session.shot(pose=f"naive pose {i}")
        return (time.perf_counter() - started) / sample


def local_overhead(home: Path, shots: int) -> dict[str, float]:
    """Per-shot milliseconds of onmodel's own work, with a provider that answers instantly."""
    from onmodel.providers import FACTORIES
    from onmodel.providers.base import GenerationRequest, GenerationResult
    from onmodel.providers.openai.images import OpenAIImagesProvider
    from onmodel.sheet import ShotRequest
    from onmodel.studio import Studio

    image = tiny_png(64)  # what the test server returns for 1024x1024 (scaled down 16x)
    spent = {"provider": 0.0, "blob": 0.0}

    class Instant(OpenAIImagesProvider):
        """The real provider (routes, declarations) but for the API call, which is instant."""

        def generate(self, request: GenerationRequest) -> GenerationResult:
            started = time.perf_counter()
            # distinct bytes per shot, as real images are (so every blob is a new file)
            data = image + request.prompt.encode()[-32:]
            result = GenerationResult(data=data, format="png", sent_params=dict(request.params))
            spent["provider"] += time.perf_counter() - started
            return result

    original = FACTORIES["openai-images"]
    FACTORIES["openai-images"] = lambda context: Instant(context=context)
    try:
        with Studio.open(home) as studio:
            session = studio.start_session(
                "mia", slug="overhead", provider="openai-images", model="gpt-image-2"
            )
            put = studio.blobs.put

            def timed_put(data: bytes, fmt: str) -> Any:
                started = time.perf_counter()
                try:
                    return put(data, fmt)
                finally:
                    spent["blob"] += time.perf_counter() - started

            studio.blobs.put = timed_put
            compose = execute = 0.0
            planner = studio.planner(session)  # as a batch plans: one planner per parent
            for i in range(shots):
                started = time.perf_counter()
                plan = planner.plan(ShotRequest(pose=f"overhead {i}"))
                compose += time.perf_counter() - started
                started = time.perf_counter()
                studio.execute(plan)
                execute += time.perf_counter() - started
    finally:
        FACTORIES["openai-images"] = original
    database = execute - spent["blob"] - spent["provider"]
    return {
        "compose_ms": compose / shots * 1000,
        "database_ms": database / shots * 1000,
        "blob_ms": spent["blob"] / shots * 1000,
        "total_ms": (compose + execute - spent["provider"]) / shots * 1000,
    }


def client_call_ms(home: Path, server: Server, calls: int) -> float:
    """Median client-side time of one real provider call when the server answers at once."""
    from onmodel.providers import get_provider
    from onmodel.sheet import ShotRequest
    from onmodel.studio import Studio

    server.control("latency", {"latency": 0})
    timings = []
    with Studio.open(home) as studio:
        plan = studio.plan_shot("naive", ShotRequest(pose="probe"))
        request = plan.generation_request()
        for _ in range(calls):
            started = time.perf_counter()
            get_provider("openai-images").generate(request)  # a new provider per shot, as now
            timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=200, help="shots in the batch")
    parser.add_argument("--latency", type=float, default=0.5, help="server seconds per request")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rpm", type=float, default=None, help="client-side requests/minute")
    parser.add_argument(
        "--naive-sample",
        type=int,
        default=20,
        help="shots the naive loop really makes before scaling to N (0: all N)",
    )
    parser.add_argument("--overhead-shots", type=int, default=50)
    parser.add_argument(
        "--runs",
        type=int,
        default=3,
        help="CLI runs of the batch (each a fresh session); the median wall time is reported",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    n, latency, c = args.n, args.latency, args.concurrency

    with tempfile.TemporaryDirectory(prefix="onmodel-bench-") as tmp:
        home = Path(tmp) / "home"
        with fake_server(latency) as server:
            env = {k: v for k, v in os.environ.items() if not k.startswith("ONMODEL_")}
            env.update(
                ONMODEL_HOME=str(home), OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=server.base_url
            )
            os.environ.update(
                ONMODEL_HOME=str(home), OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=server.base_url
            )
            compile_onmodel()
            runs = max(1, args.runs)
            set_up_home(home, runs)
            measured = []
            for run in range(runs):
                shot_list = Path(tmp) / f"bench-{run}.yaml"
                write_list(shot_list, n, session=f"bench-{run}")
                result = run_cli(home, shot_list, args, env)
                if result[0]["succeeded"] != n:
                    raise RuntimeError(f"only {result[0]['succeeded']} of {n} shots: {result[0]}")
                measured.append(result)
            walls = [wall for _, wall, _ in measured]
            # the median; of an even number of runs, the slower middle one
            report, wall, peak_kib = sorted(measured, key=lambda m: m[1])[runs // 2]
            small_n = max(1, n // 4)
            small_list = Path(tmp) / "small.yaml"
            write_list(small_list, small_n, session="small")
            _, _, small_peak_kib = run_cli(home, small_list, args, env)
            max_in_flight = server.stats()["max_in_flight"]
            server_seconds = server.seconds_per_request()
            sample = n if args.naive_sample <= 0 else min(n, args.naive_sample)
            naive_per_shot = naive_loop(home, sample)
            overhead = local_overhead(home, args.overhead_shots)
            client_ms = client_call_ms(home, server, 20)

    bound = max(n * latency / c, n * 60 / args.rpm if args.rpm else 0.0)
    run_elapsed = float(report["elapsed_s"])
    naive = naive_per_shot * n
    figures = {
        "n": n,
        "latency_s": latency,
        "concurrency": c,
        "rpm": args.rpm,
        "wall_s": round(wall, 3),
        "walls_s": [round(w, 3) for w in walls],
        "run_elapsed_s": round(run_elapsed, 3),
        "startup_s": round(wall - run_elapsed, 3),
        "bound_s": round(bound, 3),
        "ratio": round(wall / bound, 3),
        "run_ratio": round(run_elapsed / bound, 3),
        "server_max_in_flight": max_in_flight,
        "server_s_per_request": round(server_seconds, 4),
        "naive_s": round(naive, 3),
        "naive_sample": sample,
        "naive_ratio": round(naive / bound, 3),
        "overhead_ms": {k: round(v, 2) for k, v in overhead.items()},
        "client_call_ms": round(client_ms, 2),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "small_n": small_n,
        "small_peak_rss_mib": round(small_peak_kib / 1024, 1),
    }
    rate = f", rpm {args.rpm:g}" if args.rpm else ""
    print(f"batch_throughput: N={n}, latency {latency:g} s, concurrency {c}{rate}")
    print(f"  wall time (CLI)      {wall:8.2f} s   (run loop {run_elapsed:.2f} s + start-up)")
    if len(walls) > 1:
        each = ", ".join(f"{w:.2f}" for w in walls)
        print(f"  runs                 {len(walls):8d}     ({each} s; the median is shown)")
    print(f"  ideal bound          {bound:8.2f} s   max(N·L/C, N/rpm)")
    print(
        f"  ratio                {wall / bound:8.3f}     (run loop alone {run_elapsed / bound:.3f})"
    )
    scaled = "" if sample == n else f", measured on {sample} shots"
    print(f"  naive loop           {naive:8.2f} s   ratio {naive / bound:.2f}{scaled}")
    print(f"  max in flight        {max_in_flight:8d}     (at the server)")
    kept = f"{server_seconds * 1000:8.1f} ms  (latency L = {latency * 1000:g} ms)"
    print(f"  server time/request  {kept}")
    print(
        "  local overhead/shot  "
        f"{overhead['total_ms']:8.2f} ms  (compose {overhead['compose_ms']:.2f}, "
        f"database {overhead['database_ms']:.2f}, blob {overhead['blob_ms']:.2f})"
    )
    print(f"  client call at L=0   {client_ms:8.2f} ms  (SDK client + request, per shot)")
    print(
        f"  peak memory (CLI)    {peak_kib / 1024:8.1f} MiB (max RSS; "
        f"{small_peak_kib / 1024:.1f} MiB for {small_n} shots)"
    )
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
