"""``onmodel db check``, owner liveness and stale pending rows.

The killed-shot test runs the real CLI in a subprocess (the in-process ``FakeImages`` provider
with a long latency keeps its request in flight) and SIGKILLs it; the others build the state a
kill leaves behind directly, so they can say exactly which files and rows exist.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from onmodel.batch.lock import SessionLock
from onmodel.blobs import BlobStore
from onmodel.doctor import check_store, discard_unreferenced
from onmodel.owners import forget_dead_owners, is_owner_alive, owner_token, owners_dir
from onmodel.sheet import ShotRequest
from onmodel.store.models import BatchRow, ImageRow
from onmodel.store.rows import insert_row, update_row
from onmodel.store.stale import STALE_MESSAGE, find_stale, reconcile_stale
from onmodel.studio import Studio
from test_batch_support import cli, make_session, png, start_cli, wait_until

HOUR_AGO = time.time() - 3600


def dead_token(home: Path) -> str:
    """The token of a process that took its lock and was then SIGKILLed."""
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys, signal\n"
            "from pathlib import Path\n"
            "from onmodel.owners import owner_token\n"
            "print(owner_token(Path(sys.argv[1])), flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n",
            str(home),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    return child.stdout.strip()


def pending_shot(studio: Studio, owner: str | None, *, provider: str | None = None) -> int:
    """A pending row as a shot in flight leaves it, owned by ``owner``."""
    plan = studio.plan_shot("week", ShotRequest(pose="waving"), provider=provider)
    image_id = studio.record(plan)
    with studio.engine.begin() as conn:
        update_row(conn, ImageRow, image_id, {"owner": owner})
    return image_id


def status(studio: Studio, image_id: int) -> str:
    return studio.image(image_id).status


# ------------------------------------------------------------------ owners


def test_owner_liveness_follows_the_owner_process(isolated_home: Path) -> None:
    mine = owner_token(isolated_home)
    assert owner_token(isolated_home) == mine  # one token per process and home
    assert is_owner_alive(isolated_home, mine)
    gone = dead_token(isolated_home)
    assert (owners_dir(isolated_home) / f"{gone}.lock").exists()  # SIGKILL ran no clean-up
    assert not is_owner_alive(isolated_home, gone)
    host, _pid, nonce = mine.split(":")
    assert not is_owner_alive(isolated_home, f"{host}:1:{'0' * 16}")  # no lock file: gone
    assert is_owner_alive(isolated_home, f"another-host:1:{nonce}")  # cannot judge: alive
    assert is_owner_alive(isolated_home, "../../etc/passwd")  # not a token: never a path

    assert forget_dead_owners(isolated_home) == 1
    assert sorted(p.name for p in owners_dir(isolated_home).iterdir()) == [f"{mine}.lock"]


def test_a_clean_exit_removes_the_owner_lock_file(isolated_home: Path) -> None:
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom pathlib import Path\nfrom onmodel.owners import owner_token\n"
            "print(owner_token(Path(sys.argv[1])))\n",
            str(isolated_home),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    assert not (owners_dir(isolated_home) / f"{child.stdout.strip()}.lock").exists()


# ------------------------------------------------------------------ stale pending rows


def test_only_rows_whose_owner_is_gone_are_stale(studio: Studio) -> None:
    make_session(studio, provider="preview")
    home = studio.paths.home
    gone = dead_token(home)
    killed = pending_shot(studio, gone)
    also_killed = pending_shot(studio, gone)
    live = pending_shot(studio, owner_token(home))
    manual = pending_shot(studio, gone, provider="chatgpt")  # waits for `attach`, by design
    legacy = pending_shot(studio, None)  # from before revision 0002

    assert [r.image_id for r in find_stale(studio.engine, home)] == [killed, also_killed, legacy]
    assert reconcile_stale(studio.engine, home, [live, killed]) == [killed]
    assert not (owners_dir(home) / f"{gone}.lock").exists()  # reconciled, then forgotten
    assert status(studio, killed) == "interrupted"
    assert studio.image(killed).row.error_message == STALE_MESSAGE
    assert status(studio, also_killed) == "pending"  # not asked for, not touched

    report = check_store(studio.engine, studio.blobs, home, fix=True)
    assert sorted(f.subject for f in report.findings) == [
        f"image {also_killed}",
        f"image {legacy}",
    ]
    assert report.healthy
    assert [status(studio, i) for i in (live, manual)] == ["pending", "pending"]
    retried = studio.retry(killed)
    assert retried.succeeded and retried.row.retry_of_id == killed


def test_a_batch_row_without_owner_is_stale_only_without_the_batch_lock(studio: Studio) -> None:
    session = make_session(studio, provider="preview")
    image_id = pending_shot(studio, None)
    with studio.engine.begin() as conn:
        batch_id = insert_row(conn, BatchRow, {"session_id": session.id, "spec_hash": "x"})
        update_row(conn, ImageRow, image_id, {"batch_id": batch_id, "shot_key": "k"})
    lock = SessionLock(studio.paths.home, session.id, session.slug)
    lock.acquire()
    try:
        assert find_stale(studio.engine, studio.paths.home) == []
    finally:
        lock.release()
    assert [r.image_id for r in find_stale(studio.engine, studio.paths.home)] == [image_id]


# ------------------------------------------------------------------ files


def root_of(studio: Studio) -> Path:
    """The folder store's root (these tests check the default store, a folder)."""
    assert isinstance(studio.blobs, BlobStore)
    return studio.blobs.root


def stored(studio: Studio, seed: str) -> Path:
    """An unreferenced blob, as a shot killed between storing and recording leaves it."""
    return studio.blobs.put(png(seed), "png").path


def age(path: Path, when: float = HOUR_AGO) -> Path:
    os.utime(path, (when, when))
    return path


def test_fix_removes_old_orphans_and_temp_files_and_nothing_in_use(studio: Studio) -> None:
    make_session(studio, provider="preview")
    shot = studio.shot("week", ShotRequest(pose="waving"))
    referenced = list(root_of(studio).rglob("*.png"))
    for path in referenced:
        age(path)  # old, but referenced: never a candidate
    old_orphan = age(stored(studio, "old orphan"))
    young_orphan = stored(studio, "young orphan")
    old_temp = root_of(studio) / "ab" / ".tmp-killed.png"
    young_temp = root_of(studio) / "ab" / ".tmp-writing.png"
    old_temp.parent.mkdir(exist_ok=True)
    for path in (old_temp, young_temp):
        path.write_bytes(b"partial")
    age(old_temp)

    found = check_store(studio.engine, studio.blobs, studio.paths.home)
    assert {(f.kind, f.subject) for f in found.problems} == {
        ("orphan", str(old_orphan)),
        ("temp", str(old_temp)),
    }
    assert found.young_files_kept == 2 and found.blobs_verified == len(referenced)
    assert old_orphan.exists() and old_temp.exists()  # only reported without --fix

    fixed = check_store(studio.engine, studio.blobs, studio.paths.home, fix=True)
    assert fixed.healthy and len(fixed.findings) == 2
    assert not old_orphan.exists() and not old_temp.exists()
    assert young_orphan.exists() and young_temp.exists()
    assert all(path.exists() for path in referenced)
    assert studio.blobs.verify(shot.row.sha256 or "", shot.row.format or "")


def test_an_orphan_stored_again_during_the_check_is_kept(studio: Studio) -> None:
    """``put`` touches a file it reuses, so a row about to refer to it keeps its file."""
    orphan = age(stored(studio, "about to be used"))
    assert stored(studio, "about to be used") == orphan
    name = orphan.relative_to(root_of(studio)).as_posix()
    assert not studio.blobs.discard(name, unused_since=time.time() - 60)
    assert orphan.exists()
    age(orphan)
    assert studio.blobs.discard(name, unused_since=time.time() - 60)
    assert not orphan.exists()


def test_discarding_named_files_follows_the_checks_rules(studio: Studio) -> None:
    """What a purge asks for: of the files it names, only those no row refers to and old
    enough go; a referenced one stays however old, a young one until a later check."""
    make_session(studio, provider="preview")
    shot = studio.shot("week", ShotRequest(pose="waving"))
    assert shot.sha256 is not None and shot.path is not None
    old, young = age(stored(studio, "old")), stored(studio, "young")
    age(shot.path)
    named = [(path.stem, "png") for path in (old, young)] + [(shot.sha256, "png")]
    named.append(("0" * 64, "png"))  # gone already: not counted
    done = discard_unreferenced(studio.engine, studio.blobs, named)
    assert (done.files, done.bytes, done.kept) == (1, len(png("old")), 2)
    assert not old.exists() and young.exists() and shot.path.exists()
    found = check_store(studio.engine, studio.blobs, studio.paths.home)
    assert found.healthy and found.young_files_kept == 1  # the young one, for a later check


def test_a_damaged_referenced_blob_is_reported_and_kept(studio: Studio) -> None:
    session = make_session(studio, provider="preview")
    anchor = session.character.anchor
    missing = studio.shot(session, ShotRequest(pose="waving"))
    assert anchor.path is not None and missing.path is not None
    anchor.path.write_bytes(b"damaged")
    age(anchor.path)  # old and referenced: --fix must still leave it alone
    missing.path.unlink()

    result = cli(studio.paths.home, "db", "check", "--fix", "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert not report["healthy"] and report["problems"] == 2
    kinds = {f["kind"]: f for f in report["findings"]}
    assert kinds["damaged"]["subject"] == str(anchor.path)
    assert f"image {anchor.id}" in kinds["damaged"]["detail"]
    assert f"the request of image {missing.id}" in kinds["damaged"]["detail"]
    assert kinds["missing"]["subject"] == str(missing.path)
    assert anchor.path.read_bytes() == b"damaged"  # a referenced file is never touched

    lines = cli(studio.paths.home, "db", "check")
    assert lines.returncode == 1 and lines.stderr == ""
    assert sum(line.startswith("problem: ") for line in lines.stdout.splitlines()) == 2


def test_quick_finds_a_missing_file_and_not_a_damaged_one(studio: Studio) -> None:
    """``--quick`` reads the store's listing only: existence, never the bytes."""
    session = make_session(studio, provider="preview")
    anchor = session.character.anchor
    missing = studio.shot(session, ShotRequest(pose="waving"))
    assert anchor.path is not None and missing.path is not None
    anchor.path.write_bytes(b"damaged")
    missing.path.unlink()

    quick = check_store(studio.engine, studio.blobs, studio.paths.home, quick=True)
    assert [(f.kind, f.subject) for f in quick.problems] == [("missing", str(missing.path))]
    assert quick.blobs_found == 1 and quick.blobs_verified == 0

    result = cli(studio.paths.home, "db", "check", "--quick")
    assert result.returncode == 1, result.stderr
    assert "1 files found (--quick: not hashed)" in result.stdout


def test_a_healthy_store_exits_zero(studio: Studio) -> None:
    make_session(studio, provider="preview")
    result = cli(studio.paths.home, "db", "check")
    assert result.returncode == 0, result.stderr
    assert "0 problem(s)" in result.stdout


# ------------------------------------------------------------------ a real kill


def pending_rows(home: Path) -> list[tuple[int, str | None]]:
    with Studio.open(home) as studio, studio.engine.connect() as conn:
        found = conn.execute(text("SELECT id, owner FROM image WHERE status = 'pending'"))
        return [(row.id, row.owner) for row in found]


@pytest.mark.slow
def test_a_killed_shot_is_stale_and_retryable_while_a_live_one_is_not(
    isolated_home: Path, studio: Studio
) -> None:
    """Needs the studio wiring: pending rows carry their owner, and retry reconciles."""
    make_session(studio)
    studio.close()
    process = start_cli(isolated_home, "shot", "--pose", "waving", latency=600)
    try:
        assert wait_until(lambda: len(pending_rows(isolated_home)) == 1, timeout=60)
        [(image_id, owner)] = pending_rows(isolated_home)
        assert owner is not None and owner.split(":")[1] == str(process.pid)

        live = cli(isolated_home, "db", "check", "--fix", "--json")
        assert live.returncode == 0, live.stderr  # in flight, not stale
        assert pending_rows(isolated_home) == [(image_id, owner)]
        refused = cli(isolated_home, "retry", str(image_id))
        assert refused.returncode != 0 and refused.stderr.startswith("error:")

        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    assert process.returncode == -signal.SIGKILL

    found = cli(isolated_home, "db", "check", "--json")
    assert found.returncode == 1, found.stderr
    [stale] = json.loads(found.stdout)["findings"]
    assert (stale["kind"], stale["subject"]) == ("stale", f"image {image_id}")

    again = cli(isolated_home, "retry", str(image_id), "--json", latency=0.0)
    assert again.returncode == 0, again.stderr
    assert pending_rows(isolated_home) == []
    assert not (owners_dir(isolated_home) / f"{owner}.lock").exists()
    healthy = cli(isolated_home, "db", "check")
    assert healthy.returncode == 0, healthy.stdout
