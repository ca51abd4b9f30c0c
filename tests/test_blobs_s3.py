"""Images in an S3-compatible bucket (``ONMODEL_BLOBS_URL=s3://bucket/prefix``), shared by a
team: two "machines" (two homes) on one database and one bucket, the read cache, damage found
on read and by ``db check``, the orphan sweep's grace, and one-line errors for a missing
bucket, refused credentials and a server that is down.

The server is moto's standalone S3 server on 127.0.0.1 (tests/s3server.py), reached through
the AWS SDK's own variables only.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

import onmodel.s3blobs
from cli_inprocess import run_cli
from onmodel.blobs import (
    BlobIntegrityError,
    BlobMissingError,
    BlobStoreError,
    BlobStoreURLError,
    blob_name,
    open_blobs,
    sha256_bytes,
)
from onmodel.doctor import check_store
from onmodel.export import export_session
from onmodel.s3blobs import S3BlobStore, make_client, parse_url
from onmodel.sheet import ShotRequest
from onmodel.studio import Studio
from onmodel.thumbnails import Thumbnailer
from s3server import (  # noqa: F401  (fixtures, by their names)
    SECRET_KEY,
    bucket_keys,
    fixture_s3_blobs_url,
    fixture_s3_bucket,
    fixture_s3_endpoint,
    fixture_s3_locked_endpoint,
    fixture_s3_locked_server,
    fixture_s3_server,
    free_port,
    point_sdk_at,
    s3_client,
)
from test_batch_support import make_session, png

PREFIX = "team-images"


def s3_store(studio: Studio) -> S3BlobStore:
    assert isinstance(studio.blobs, S3BlobStore)
    return studio.blobs


def shoot(home: Path) -> tuple[int, str, str]:
    """A session and one shot made in ``home``: the shot's id, digest and format."""
    with Studio.open(home) as studio:
        make_session(studio, provider="preview")
        shot = studio.shot("week", ShotRequest(pose="waving"))
        assert shot.sha256 is not None and shot.format is not None
        return shot.id, shot.sha256, shot.format


@pytest.fixture
def shared_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """One database for every home in the test, as a team's PostgreSQL would be."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    monkeypatch.setenv("ONMODEL_DATABASE_URL", url)
    return url


def test_a_shot_goes_to_the_bucket_and_a_second_machine_opens_it(
    s3_blobs_url: str, s3_bucket: str, shared_db: str, tmp_path: Path, isolated_home: Path
) -> None:
    image_id, sha256, fmt = shoot(isolated_home)
    keys = bucket_keys(s3_bucket)
    assert f"{PREFIX}/{blob_name(sha256, fmt)}" in keys
    assert all(key.startswith(f"{PREFIX}/") for key in keys) and len(keys) == 2  # + anchor
    assert not (isolated_home / "blobs").exists()  # nothing in the folder store

    other = tmp_path / "second-machine"
    with Studio.open(other) as studio:
        image = studio.image(image_id)
        data = image.read_bytes()
        assert sha256_bytes(data) == sha256
        path = image.path
        assert path is not None and path.is_relative_to(other / "cache" / "blobs")
        assert path.read_bytes() == data
        assert image.stored_at == f"{s3_blobs_url}/{blob_name(sha256, fmt)}"

        thumbnail = Thumbnailer(studio.blobs, studio.paths.thumbnails).get(sha256, fmt, 96)
        assert thumbnail.is_relative_to(other) and thumbnail.stat().st_size > 0

        result = export_session(studio, "week", tmp_path / "export")
        copied = [f for f in result.files if f.image_id == image_id]
        assert copied and copied[0].sha256 == sha256
        assert sha256_bytes((tmp_path / "export" / copied[0].name).read_bytes()) == sha256


def test_the_web_app_shows_a_thumbnail_from_the_bucket(
    s3_blobs_url: str, shared_db: str, tmp_path: Path, isolated_home: Path
) -> None:
    from werkzeug.test import Client

    from onmodel.web.app import GalleryApp

    image_id, sha256, _fmt = shoot(isolated_home)
    other = tmp_path / "second-machine"
    with Studio.open(other) as studio:
        client = Client(GalleryApp(studio))
        answer = client.get(f"/thumbs/{image_id}/96")
        assert answer.status_code == 200 and len(answer.get_data()) > 0
        assert list((other / "thumbnails").rglob(f"{sha256}-96.*"))
        whole = client.get(f"/files/{image_id}")
        assert whole.status_code == 200 and sha256_bytes(whole.get_data()) == sha256


def test_a_damaged_cached_copy_is_found_and_fetched_again(
    s3_blobs_url: str, shared_db: str, tmp_path: Path, isolated_home: Path
) -> None:
    image_id, sha256, fmt = shoot(isolated_home)
    with Studio.open(tmp_path / "second-machine") as studio:
        cached = studio.image(image_id).path
        assert cached is not None
        cached.write_bytes(b"bit rot")
        assert sha256_bytes(studio.image(image_id).read_bytes()) == sha256
        assert sha256_bytes(cached.read_bytes()) == sha256  # the copy was replaced
        cached.write_bytes(b"bit rot again")
        assert studio.image(image_id).path == cached
        assert sha256_bytes(cached.read_bytes()) == sha256
        assert studio.blobs.verify(sha256, fmt)


def test_a_damaged_object_is_refused_on_read_and_reported_by_db_check(
    s3_blobs_url: str, s3_bucket: str, shared_db: str, tmp_path: Path, isolated_home: Path
) -> None:
    image_id, sha256, fmt = shoot(isolated_home)
    key = f"{PREFIX}/{blob_name(sha256, fmt)}"
    s3_client().put_object(Bucket=s3_bucket, Key=key, Body=b"not the picture")

    other = tmp_path / "second-machine"  # no cached copy there
    with Studio.open(other) as studio:
        with pytest.raises(BlobIntegrityError, match="damaged in the bucket"):
            studio.image(image_id).read_bytes()
        with pytest.raises(BlobIntegrityError, match="damaged"):
            studio.image(image_id).path  # noqa: B018
        assert not list((other / "cache").rglob(f"{sha256}*"))  # nothing damaged is kept
        assert not studio.blobs.verify(sha256, fmt)
        report = check_store(studio.engine, studio.blobs, studio.paths.home)
    assert [(f.kind, f.subject) for f in report.problems] == [
        ("damaged", f"s3://{s3_bucket}/{key}")
    ]
    assert f"image {image_id}" in report.problems[0].detail

    outcome = run_cli(other, "db", "check")
    assert outcome.code == 1
    assert f"damaged s3://{s3_bucket}/{key}" in outcome.stdout
    assert s3_blobs_url in outcome.stdout

    s3_client().delete_object(Bucket=s3_bucket, Key=key)
    for quick in (False, True):
        with Studio.open(other) as studio:
            found = check_store(studio.engine, studio.blobs, studio.paths.home, quick=quick)
        assert [(f.kind, f.subject) for f in found.problems] == [
            ("missing", f"s3://{s3_bucket}/{key}")
        ]
    with Studio.open(other) as studio, pytest.raises(BlobMissingError):
        studio.blobs.read(sha256, fmt)


def test_db_check_verifies_a_healthy_bucket_fully_or_quickly(
    s3_blobs_url: str, isolated_home: Path
) -> None:
    shoot(isolated_home)
    with Studio.open() as studio:
        full = check_store(studio.engine, studio.blobs, studio.paths.home)
        quick = check_store(studio.engine, studio.blobs, studio.paths.home, quick=True)
    assert full.healthy and full.blobs_verified == 2 and full.files_scanned == 2
    assert quick.healthy and quick.blobs_found == 2 and quick.blobs_verified == 0
    outcome = run_cli(isolated_home, "db", "check", "--quick")
    assert outcome.code == 0 and "2 files found" in outcome.stdout


def test_the_orphan_sweep_on_a_bucket_keeps_young_objects_and_referenced_ones(
    s3_blobs_url: str, s3_bucket: str, isolated_home: Path
) -> None:
    shoot(isolated_home)
    with Studio.open() as studio:
        orphan = studio.blobs.put(png("orphan"), "png")
        name = blob_name(orphan.sha256, "png")
        kept = check_store(studio.engine, studio.blobs, studio.paths.home, fix=True)
        assert kept.healthy and kept.young_files_kept == 1
        assert f"{PREFIX}/{name}" in bucket_keys(s3_bucket)

        # Within the grace period the object counts as in use however the sweep is asked.
        assert not studio.blobs.discard(name, unused_since=time.time() - 600)
        time.sleep(1.1)  # LastModified has one-second resolution
        listed = check_store(studio.engine, studio.blobs, studio.paths.home, grace=timedelta(0))
        assert [(f.kind, f.subject) for f in listed.problems] == [
            ("orphan", f"s3://{s3_bucket}/{PREFIX}/{name}")
        ]
        fixed = check_store(
            studio.engine, studio.blobs, studio.paths.home, fix=True, grace=timedelta(0)
        )
    assert fixed.healthy and [f.kind for f in fixed.findings] == ["orphan"]
    keys = bucket_keys(s3_bucket)
    assert f"{PREFIX}/{name}" not in keys and len(keys) == 2  # the referenced two stay


def test_a_purge_deletes_the_objects_it_leaves_unreferenced(
    s3_blobs_url: str, s3_bucket: str, isolated_home: Path
) -> None:
    image_id, sha256, fmt = shoot(isolated_home)
    key = f"{PREFIX}/{blob_name(sha256, fmt)}"
    with Studio.open() as studio:
        studio.hide_images([image_id])
        preview = studio.purge(dry_run=True)
        assert (preview.files, preview.bytes) == (1, studio.blobs.size(sha256, fmt))
        kept = studio.purge()  # just written: a write may still be using it
        assert (kept.images, kept.files, kept.files_kept) == (1, 0, 1)
        assert key in bucket_keys(s3_bucket)

        again = studio.shot("week", ShotRequest(pose="sitting"))
        assert again.sha256 is not None and again.format is not None
        studio.hide_images([again.id])
        time.sleep(1.1)  # LastModified has one-second resolution
        report = studio.purge(grace=timedelta(0))
    assert (report.images, report.files) == (1, 1)
    assert f"{PREFIX}/{blob_name(again.sha256, again.format)}" not in bucket_keys(s3_bucket)


def test_storing_bytes_already_in_the_bucket_uploads_nothing(
    s3_blobs_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Studio.open() as studio:
        store = s3_store(studio)
        calls: list[str] = []
        store.client.meta.events.register(
            "before-call.s3.*", lambda model, **_: calls.append(model.name)
        )
        data = png("twice")
        first = store.put(data, "png")
        second = store.put(data, "png")
        assert first == second and calls.count("PutObject") == 1
        assert calls.count("HeadObject") == 2 and "CopyObject" not in calls

        # A reused object written long ago is renewed on the server (no upload), so a
        # concurrent db check sees it as in use.
        monkeypatch.setattr(onmodel.s3blobs, "TOUCH_AFTER", timedelta(0))
        time.sleep(1.1)
        before = store.client.head_object(
            Bucket=store.bucket, Key=store._key(blob_name(first.sha256, "png"))
        )
        store.put(data, "png")
        after = store.client.head_object(
            Bucket=store.bucket, Key=store._key(blob_name(first.sha256, "png"))
        )
        assert calls.count("PutObject") == 1 and calls.count("CopyObject") == 1
        assert after["LastModified"] > before["LastModified"]
        assert store.read(first.sha256, "png") == data


def test_storing_the_bytes_again_repairs_a_damaged_object_of_the_same_size(
    s3_blobs_url: str,
) -> None:
    with Studio.open() as studio:
        store = s3_store(studio)
        data = png("repaired")
        blob = store.put(data, "png")
        key = store._key(blob_name(blob.sha256, "png"))
        damaged = bytes([data[0] ^ 1]) + data[1:]  # one bit flipped, the size unchanged
        store.client.put_object(Bucket=store.bucket, Key=key, Body=damaged)
        assert store.check(blob_name(blob.sha256, "png"), blob.sha256) is not None
        store.put(data, "png")
        body = store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read()
        assert body == data
        assert store.check(blob_name(blob.sha256, "png"), blob.sha256) is None


def test_puts_send_content_md5_so_the_server_checks_what_arrived(s3_blobs_url: str) -> None:
    with Studio.open() as studio:
        store = s3_store(studio)
        sent: list[dict[str, object]] = []
        store.client.meta.events.register(
            "before-call.s3.PutObject", lambda params, **_: sent.append(dict(params["headers"]))
        )
        store.put(png("checked"), "png")
    assert any("Content-MD5" in headers for headers in sent)


def test_a_missing_bucket_is_one_line_and_no_traceback(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    monkeypatch.setenv("ONMODEL_BLOBS_URL", "s3://no-such-bucket-here/x")
    outcome = run_cli(isolated_home, "db", "check")
    assert outcome.code != 0
    assert outcome.error_lines == [
        f"error: listing the bucket: the bucket 'no-such-bucket-here' does not exist at "
        f"{s3_endpoint}"
    ]
    assert SECRET_KEY not in outcome.stdout + outcome.stderr


def test_refused_credentials_are_one_line_without_the_secret(
    s3_locked_endpoint: str, monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    monkeypatch.setenv("ONMODEL_BLOBS_URL", "s3://any-bucket/x")
    outcome = run_cli(isolated_home, "db", "check")
    assert outcome.code != 0 and len(outcome.error_lines) == 1
    line = outcome.error_lines[0]
    assert "refused the credentials (InvalidAccessKeyId)" in line and "Traceback" not in line
    assert SECRET_KEY not in outcome.stdout + outcome.stderr


def test_a_server_that_is_down_is_one_line(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", down)
    monkeypatch.setenv("ONMODEL_BLOBS_URL", "s3://any-bucket/x")
    outcome = run_cli(isolated_home, "db", "check")
    assert outcome.code != 0 and len(outcome.error_lines) == 1
    assert f"cannot reach the S3 endpoint {down}" in outcome.error_lines[0]
    assert SECRET_KEY not in outcome.stdout + outcome.stderr


def test_a_shot_with_the_server_down_fails_in_one_line(
    s3_blobs_url: str, monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    with Studio.open() as studio:
        make_session(studio, provider="preview")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    outcome = run_cli(isolated_home, "shot", "--pose", "waving")
    assert outcome.code != 0
    assert any("cannot reach the S3 endpoint" in line for line in outcome.error_lines)
    assert "Traceback" not in outcome.stderr and SECRET_KEY not in outcome.stderr


def test_a_blobs_url_of_another_kind_is_refused(
    monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    with pytest.raises(BlobStoreURLError, match="s3://bucket/prefix"):
        open_blobs("ftp://files.example/x", isolated_home)
    for bad in ("s3://", "s3:///prefix", "s3://bucket/a//b"):
        with pytest.raises(BlobStoreURLError):
            parse_url(bad)
    assert parse_url("s3://bucket") == ("bucket", "")
    assert parse_url("s3://bucket/a/b/") == ("bucket", "a/b")
    monkeypatch.setenv("ONMODEL_BLOBS_URL", "gs://bucket")
    outcome = run_cli(isolated_home, "db", "check")
    assert outcome.code == 2 and len(outcome.error_lines) == 1
    assert "ONMODEL_BLOBS_URL='gs://bucket' is not a blob store" in outcome.error_lines[0]


def test_a_local_studio_and_help_never_import_boto3(tmp_path: Path) -> None:
    code = (
        "import sys, onmodel.cli.app\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules\n"
        "from onmodel import Studio\n"
        "Studio.open(sys.argv[1]).close()\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules\n"
    )
    env = {"PATH": "/usr/bin:/bin", "ONMODEL_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "home")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_addressing_is_path_style_off_aws_unless_the_profile_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("boto3")
    point_sdk_at(monkeypatch, "http://minio.studio.invalid:9000", tmp_path)
    client = make_client()  # builds a client only: nothing is sent
    assert client.meta.endpoint_url == "http://minio.studio.invalid:9000"
    assert client.meta.config.s3 == {"addressing_style": "path"}

    config = tmp_path / "aws-config"
    config.write_text("[default]\ns3 =\n    addressing_style = virtual\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    assert (make_client().meta.config.s3 or {}).get("addressing_style") != "path"

    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-empty"))
    aws = make_client()
    assert aws.meta.endpoint_url.endswith(".amazonaws.com")
    assert (aws.meta.config.s3 or {}).get("addressing_style") != "path"

    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(BlobStoreError, match="no-such-profile"):
        make_client()
