"""The read cache of a remote blob store: verified copies, atomic fills, a bounded size."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from onmodel.blobcache import DEFAULT_CAP_MB, ReadCache, parse_cap
from onmodel.blobs import BlobIntegrityError, sha256_bytes
from onmodel.errors import UsageError
from onmodel.settings import Settings


def test_a_copy_is_kept_only_when_its_bytes_match(tmp_path: Path) -> None:
    cache = ReadCache(tmp_path, None)
    data = b"picture bytes"
    sha256 = sha256_bytes(data)
    with pytest.raises(BlobIntegrityError):
        cache.fill_stream(sha256, "png", [b"other ", b"bytes"], source="a download")
    assert cache.get(sha256, "png") is None
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no temp file left behind
    path = cache.fill_stream(sha256, "png", [data[:4], data[4:]], source="a download")
    assert cache.get(sha256, "png") == path and cache.read(sha256, "png") == data
    path.write_bytes(b"damaged")
    assert cache.read(sha256, "png") is None and not path.exists()  # dropped, fetched again


def test_the_cap_evicts_the_least_recently_used_copies(tmp_path: Path) -> None:
    cache = ReadCache(tmp_path, None)
    long_ago = time.time() - 3600
    paths = []
    for n in range(5):
        data = bytes([n]) * 300
        path = cache.fill(sha256_bytes(data), "png", data)
        os.utime(path, (long_ago + n, long_ago + n))
        paths.append(path)
    cache.cap_bytes = 1000
    evicted = cache.prune()
    kept = [path.exists() for path in paths]
    assert evicted == 900 and kept == [False, False, False, True, True]  # oldest first


def test_copies_used_just_now_are_never_evicted(tmp_path: Path) -> None:
    cache = ReadCache(tmp_path, 100)
    data = b"x" * 300
    cache.fill(sha256_bytes(data), "png", data)
    assert cache.prune() == 0 and cache.get(sha256_bytes(data), "png") is not None


def test_filling_past_a_tenth_of_the_cap_prunes(tmp_path: Path) -> None:
    cache = ReadCache(tmp_path, 1000)
    old = cache.fill(sha256_bytes(b"o" * 900), "png", b"o" * 900)
    os.utime(old, (time.time() - 3600,) * 2)
    cache.fill(sha256_bytes(b"n" * 300), "png", b"n" * 300)
    assert not old.exists()


def test_the_cap_setting() -> None:
    assert parse_cap("") == DEFAULT_CAP_MB * 1024 * 1024
    assert parse_cap("0") is None and parse_cap("5") == 5 * 1024 * 1024
    for bad in ("lots", "-1", "1.5"):
        with pytest.raises(UsageError, match="ONMODEL_BLOBS_CACHE_MB"):
            parse_cap(bad)
    settings = Settings.from_environment(
        {"ONMODEL_BLOBS_URL": " s3://team/images ", "ONMODEL_BLOBS_CACHE_MB": "512"}
    )
    assert (settings.blobs_url, settings.blobs_cache_mb) == ("s3://team/images", "512")
