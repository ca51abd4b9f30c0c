"""An S3-compatible server on 127.0.0.1 for the blob-store tests: moto's standalone server.

No MinIO build is installable here, so the tests run against ``python -m moto.server`` (the
``moto[server]`` extra of the test dependencies), started once per test session on a free
port and stopped at its end. onmodel reaches it only through the AWS SDK's standard
variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``...), set per test with monkeypatch: the
code under test holds nothing moto-specific, and would talk to MinIO, R2 or AWS the same way.

Each test gets its own bucket (``s3_bucket``), so no object leaks from one test to the next.
A second server, started only when a test asks for it (``s3_locked_endpoint``), enforces
credentials (moto's ``INITIAL_NO_AUTH_ACTION_COUNT=0``) and so refuses every key: the
wrong-credentials test needs it.

Without moto the tests that use these fixtures are skipped, unless
``ONMODEL_TEST_REQUIRE_SERVERS=1`` (``scripts/test``, hence CI), where they fail.

Use from a test module (``tests/`` is on ``sys.path``)::

    from s3server import fixture_s3_blobs_url, fixture_s3_bucket  # noqa: F401

(each fixture is defined as ``fixture_NAME`` with ``name="NAME"``, so the import does not
shadow the test's argument of that name)
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ACCESS_KEY = "AKIAONMODELTEST00001"
SECRET_KEY = "onmodel-test-secret-do-not-print-0123456789"
"""Moto accepts any key; the secret is distinctive so a test can prove no output holds it."""
REGION = "us-east-1"
_buckets = itertools.count(1)


def servers_required() -> bool:
    """CI sets this: a missing server is then a failure, never a skip."""
    return os.environ.get("ONMODEL_TEST_REQUIRE_SERVERS", "") == "1"


def unavailable(reason: str) -> None:
    if servers_required():
        pytest.fail(f"ONMODEL_TEST_REQUIRE_SERVERS=1 but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1, its output in a temporary log file."""

    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        fd, log = tempfile.mkstemp(prefix="moto-", suffix=".log")
        os.close(fd)
        self.log = Path(log)

    def start(self) -> MotoServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(self.extra_env)
        for _attempt in range(3):  # a free port may be taken between the probe and the bind
            port = free_port()
            with self.log.open("ab") as output:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            self.url = f"http://127.0.0.1:{port}"
            if self._wait_ready():
                return self
            self.stop()
        log = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"moto's server did not start:\n{log}")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2):
                    return True
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def _start(extra_env: dict[str, str] | None = None) -> Iterator[str]:
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        unavailable("moto[server] is not installed (pip install -e '.[test]')")
    if importlib.util.find_spec("boto3") is None:
        unavailable("boto3 is not installed (pip install -e '.[test]')")
    server = MotoServer(extra_env).start()
    try:
        yield server.url
    finally:
        server.stop()
        server.log.unlink(missing_ok=True)


@pytest.fixture(scope="session", name="s3_server")
def fixture_s3_server() -> Iterator[str]:
    """The session's S3-compatible server: its endpoint URL."""
    yield from _start()


@pytest.fixture(scope="session", name="s3_locked_server")
def fixture_s3_locked_server() -> Iterator[str]:
    """A server that refuses every access key (credentials enforced, none created)."""
    yield from _start({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})


def point_sdk_at(monkeypatch: pytest.MonkeyPatch, endpoint: str, tmp_path: Path) -> None:
    """The AWS SDK's standard variables, and nothing from this machine's ``~/.aws``."""
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    empty = tmp_path / "aws-empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # a refused connection fails at once
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never probe 169.254.169.254


@pytest.fixture(name="s3_endpoint")
def fixture_s3_endpoint(s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The SDK pointed at the session's server; its endpoint URL."""
    point_sdk_at(monkeypatch, s3_server, tmp_path)
    return s3_server


@pytest.fixture(name="s3_locked_endpoint")
def fixture_s3_locked_endpoint(
    s3_locked_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> str:
    point_sdk_at(monkeypatch, s3_locked_server, tmp_path)
    return s3_locked_server


def s3_client() -> Any:
    """A plain boto3 client, configured from the environment as onmodel's is."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(s3={"addressing_style": "path"}))


@pytest.fixture(name="s3_bucket")
def fixture_s3_bucket(s3_endpoint: str) -> str:
    """A new, empty bucket of the test's own."""
    name = f"onmodel-test-{os.getpid()}-{next(_buckets)}"
    s3_client().create_bucket(Bucket=name)
    return name


@pytest.fixture(name="s3_blobs_url")
def fixture_s3_blobs_url(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``ONMODEL_BLOBS_URL`` set to a prefix of the test's bucket: studios opened in the test
    keep their images there."""
    url = f"s3://{s3_bucket}/team-images"
    monkeypatch.setenv("ONMODEL_BLOBS_URL", url)
    return url


def bucket_keys(bucket: str) -> list[str]:
    """Every key in ``bucket``, sorted."""
    pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))
