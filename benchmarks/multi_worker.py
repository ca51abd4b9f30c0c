"""Several machines making one batch: three ``onmodel batch run`` workers, one PostgreSQL.

Usage::

    python benchmarks/multi_worker.py --n 600 --latency 0.5 --concurrency 8 [--rpm R]

What it does, all on 127.0.0.1:

1. starts a throwaway PostgreSQL (``tests/pgserver.py``: Debian's binaries, a unix socket),
   an S3-compatible server (moto's, ``tests/s3server.py``) holding the studio's images, and
   the local OpenAI-compatible server (``tests/fakeopenai.py``) answering each request L
   seconds after receiving it;
2. gives each worker an onmodel home of its own — a stand-in for a machine: nothing shared but
   the database URL and the bucket — and imports the character once, from a fourth home;
3. **throughput**: starts ``--workers`` processes of ``python -m onmodel batch run FILE -c C``
   at once, and reports the wall time from the first start to the last exit beside the ideal
   bound ``max(N·L/C_total, N/rpm)`` with ``C_total = workers × C`` (target at N=600, L=0.5 s,
   C=8, three workers: within 1.15×), the run loops' own span without interpreter start-up,
   how many shots each worker made, that each shot was made exactly once, and that exactly one
   worker marked the batch completed;
4. **a dead machine**: runs a second batch the same way and SIGKILLs one worker once a third
   of the shots are made; reports that the others finished every shot exactly once, how many
   of the dead worker's requests in flight they made again, and the time that took beside
   the first run's (the lease, ``ONMODEL_BATCH_LEASE``, bounds the wait).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from batch_throughput import compile_onmodel, fake_server, tiny_png, write_list  # noqa: E402


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway cluster and one database at the newest schema: its URL."""
    from pgserver import Cluster, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit(
            "PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)"
        )
    root = Path(tempfile.mkdtemp(prefix="onmodel-pg-"))
    os.chmod(root, 0o755)
    cluster = Cluster(root=root, bin_dir=bin_dir)
    try:
        cluster.start()
        cluster.admin("CREATE DATABASE studio")
        yield cluster.url("studio")
    finally:
        cluster.stop()


@contextmanager
def bucket(wanted: bool) -> Iterator[dict[str, str]]:
    """moto's S3 server and a bucket: the AWS SDK variables a studio would set."""
    if not wanted:
        yield {}
        return
    import boto3

    from s3server import ACCESS_KEY, REGION, SECRET_KEY, MotoServer

    server = MotoServer().start()
    try:
        env = {
            "AWS_ENDPOINT_URL": server.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        os.environ.update(env)
        boto3.client("s3").create_bucket(Bucket="studio")
        yield {**env, "ONMODEL_BLOBS_URL": "s3://studio/images"}
    finally:
        server.stop()


@dataclass
class Worker:
    process: subprocess.Popen[str]
    started: float
    out: str = ""
    err: str = ""
    ended: float = 0.0

    def report(self) -> dict[str, Any]:
        try:
            return json.loads(self.out)  # type: ignore[no-any-return]
        except json.JSONDecodeError:
            return {}


def children_cpu() -> float:
    """CPU seconds (user and system) of the finished child processes: the workers'."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def start_workers(
    homes: list[Path], shot_list: Path, args: argparse.Namespace, env: dict[str, str]
) -> list[Worker]:
    command = [sys.executable, "-m", "onmodel", "batch", "run", str(shot_list)]
    command += ["--concurrency", str(args.concurrency), "--progress", "plain", "--json"]
    if args.rpm:
        command += ["--rpm", str(args.rpm)]
    workers = []
    for home in homes:
        own = {**env, "ONMODEL_HOME": str(home)}
        process = subprocess.Popen(
            command, env=own, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        workers.append(Worker(process, time.perf_counter()))
    return workers


def finish(workers: list[Worker]) -> None:
    for worker in workers:
        worker.out, worker.err = worker.process.communicate(timeout=900)
        worker.ended = time.perf_counter()


Row = tuple[str, str, str | None, int | None, int]


def made_rows(url: str, session: str) -> list[Row]:
    """(status, key, owner, retry_of, id) of every batch row of the session."""
    from sqlalchemy import text

    from onmodel.store.database import create_database_engine

    engine = create_database_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT i.status, i.shot_key, i.owner, i.retry_of_id, i.id FROM image i "
                    "JOIN session s ON s.id = i.session_id "
                    "WHERE s.slug = :slug AND i.shot_key IS NOT NULL"
                ),
                {"slug": session},
            )
            return [tuple(row) for row in rows]  # type: ignore[misc]
    finally:
        engine.dispose()


def exactly_once(rows: list[Row], n: int) -> bool:
    keys = Counter(row[1] for row in rows if row[0] == "succeeded")
    pending = [row for row in rows if row[0] == "pending"]
    return len(keys) == n and max(keys.values()) == 1 and not pending


def set_up(home: Path, sessions: list[str]) -> None:
    from onmodel.studio import Studio

    with Studio.open(home) as studio:
        anchor = home / "anchor.png"
        anchor.write_bytes(tiny_png())
        studio.import_character("Mia", anchor, prompt="a cheerful girl with orange hair")
        for slug in sessions:
            studio.start_session(
                "mia",
                slug=slug,
                provider="openai-images",
                model="gpt-image-2",
                params={"size": "1024x1024", "quality": "low"},
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=600, help="shots in each batch")
    parser.add_argument("--latency", type=float, default=0.5, help="server seconds per request")
    parser.add_argument("--concurrency", type=int, default=8, help="per worker")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--rpm", type=float, default=None, help="requests/minute, all workers")
    parser.add_argument("--lease", type=float, default=5.0, help="ONMODEL_BATCH_LEASE seconds")
    parser.add_argument(
        "--blobs",
        choices=("s3", "folder"),
        default="s3",
        help="images in a bucket (each worker a home of its own), or one folder all share",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    n, latency, workers_n = args.n, args.latency, args.workers
    c_total = workers_n * args.concurrency

    with (
        tempfile.TemporaryDirectory(prefix="onmodel-multi-") as tmp,
        postgres() as url,
        bucket(args.blobs == "s3") as blobs_env,
        fake_server(latency) as server,
    ):
        base = {k: v for k, v in os.environ.items() if not k.startswith("ONMODEL_")}
        env = {
            **base,
            **blobs_env,
            "ONMODEL_DATABASE_URL": url,
            "ONMODEL_BATCH_LEASE": str(args.lease),
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_BASE_URL": server.base_url,
        }
        os.environ.update(env)
        compile_onmodel()
        os.environ["ONMODEL_HOME"] = str(Path(tmp) / "setup")
        set_up(Path(tmp) / "setup", ["throughput", "killed"])
        if args.blobs == "s3":
            homes = [Path(tmp) / f"machine-{i}" for i in range(workers_n)]
        else:  # one home on a shared folder: its blobs/ is the studio's
            homes = [Path(tmp) / "setup"] * workers_n

        # 1. throughput
        shots = Path(tmp) / "throughput.yaml"
        write_list(shots, n, session="throughput")
        cpu_before = children_cpu()
        workers = start_workers(homes, shots, args, env)
        finish(workers)
        worker_cpu = children_cpu() - cpu_before
        failed = [w.err.strip() for w in workers if w.process.returncode != 0]
        if failed:
            raise SystemExit(f"a worker failed: {failed[0][-2000:]}")
        wall = max(w.ended for w in workers) - min(w.started for w in workers)
        reports = [w.report() for w in workers]
        per_worker = [int(r.get("succeeded", 0)) for r in reports]
        loop_span = max(float(r.get("elapsed_s", 0)) for r in reports)
        completed = sum(1 for r in reports if r.get("completed_here"))
        rows = made_rows(url, "throughput")
        once = exactly_once(rows, n)
        max_in_flight = server.stats()["max_in_flight"]

        kill: dict[str, Any] = {}
        if workers_n > 1:  # 2. a worker SIGKILLed a third of the way through
            shots = Path(tmp) / "killed.yaml"
            write_list(shots, n, session="killed")
            workers = start_workers(homes, shots, args, env)
            victim = workers[0]

            def made() -> int:
                return sum(1 for row in made_rows(url, "killed") if row[0] == "succeeded")

            while made() < n // 3 and victim.process.poll() is None:
                time.sleep(0.2)
            victim_tag = f":{victim.process.pid}:"
            victim.process.send_signal(signal.SIGKILL)
            killed_at = time.perf_counter()
            finish(workers[1:])
            victim.process.wait()
            failed = [w.err.strip() for w in workers[1:] if w.process.returncode != 0]
            if failed:
                raise SystemExit(f"a surviving worker failed: {failed[0][-2000:]}")
            kill_wall = max(w.ended for w in workers[1:]) - min(w.started for w in workers)
            after_kill = max(w.ended for w in workers[1:]) - killed_at
            rows = made_rows(url, "killed")
            abandoned = [r for r in rows if r[0] == "interrupted" and victim_tag in (r[2] or "")]
            retried = {r[3] for r in rows if r[3] is not None and r[0] == "succeeded"}
            abandoned_ids = {r[4] for r in abandoned}
            kill = {
                "lease_s": args.lease,
                "wall_s": round(kill_wall, 3),
                "after_kill_s": round(after_kill, 3),
                "made_by_the_killed_worker": sum(
                    1 for r in rows if r[0] == "succeeded" and victim_tag in (r[2] or "")
                ),
                "its_requests_in_flight_interrupted": len(abandoned),
                "every_one_made_again": abandoned_ids <= retried,
                "takeovers_reported": sum(w.err.count("taking over") for w in workers[1:]),
                "each_shot_once": exactly_once(rows, n),
            }

    bound = max(n * latency / c_total, n * 60 / args.rpm if args.rpm else 0.0)
    figures = {
        "n": n,
        "latency_s": latency,
        "workers": workers_n,
        "concurrency_each": args.concurrency,
        "c_total": c_total,
        "rpm": args.rpm,
        "wall_s": round(wall, 3),
        "loop_span_s": round(loop_span, 3),
        "bound_s": round(bound, 3),
        "ratio": round(wall / bound, 3),
        "loop_ratio": round(loop_span / bound, 3),
        "made_per_worker": per_worker,
        "each_shot_once": once,
        "workers_that_completed_the_batch": completed,
        "server_max_in_flight": max_in_flight,
        "worker_cpu_s": round(worker_cpu, 2),
        "worker_cpu_ms_per_shot": round(worker_cpu / n * 1000, 2),
        "cores": os.cpu_count(),
        "kill": kill,
    }
    rate = f", rpm {args.rpm:g}" if args.rpm else ""
    print(
        f"multi_worker: N={n}, latency {latency:g} s, {workers_n} workers × "
        f"concurrency {args.concurrency} (C_total {c_total}){rate}; PostgreSQL, "
        + ("S3 (moto)" if args.blobs == "s3" else "one shared folder")
    )
    print(f"  wall time            {wall:8.2f} s   (first start to last exit)")
    print(f"  run loops            {loop_span:8.2f} s   (longest worker, without start-up)")
    print(f"  ideal bound          {bound:8.2f} s   max(N·L/C_total, N/rpm)")
    print(
        f"  ratio                {wall / bound:8.3f}     (run loops alone {loop_span / bound:.3f})"
    )
    print(f"  made per worker      {per_worker}   max in flight at the server {max_in_flight}")
    print(f"  each shot once       {once}; workers that marked it completed: {completed}")
    print(
        f"  worker CPU           {worker_cpu:8.2f} s   ({worker_cpu / n * 1000:.1f} ms a shot; "
        f"{os.cpu_count()} cores shared with the servers)"
    )
    if kill:
        print(
            f"  SIGKILL at n/3       the others finished in {kill['wall_s']:.2f} s "
            f"({kill['after_kill_s']:.2f} s after the kill; lease {args.lease:g} s)"
        )
        print(
            f"                       killed worker made {kill['made_by_the_killed_worker']}; "
            f"{kill['its_requests_in_flight_interrupted']} of its requests in flight "
            f"interrupted, every one made again: {kill['every_one_made_again']}; "
            f"each shot once: {kill['each_shot_once']}"
        )
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
