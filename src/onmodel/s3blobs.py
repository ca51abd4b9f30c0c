"""Blobs in an S3-compatible bucket (``ONMODEL_BLOBS_URL=s3://bucket/prefix``), for a team.

Objects are ``prefix/aa/bb/<sha256>.<ext>``, the folder store's names, holding the bytes as
the provider produced them (never re-encoded). The promises of the folder store hold here:

* **Keyed by sha256.** A put of bytes already stored sends nothing: a HEAD finds the object
  (and, as the folder store touches a reused file, an object last written long ago is copied
  onto itself on the server, which renews its ``LastModified`` so ``db check`` keeps it).
* **Verified on write.** Every PUT carries ``Content-MD5``: the server refuses bytes that did
  not arrive exactly as sent (``BadDigest``), so a stored object is what was hashed.
* **Verified on read.** Downloaded bytes are hashed against the name before anyone sees them.
* **No half-objects.** An S3 PUT is atomic: the object appears whole, under its key, or not at
  all — a crash or a dropped connection mid-upload leaves nothing. There is no temp key and no
  copy-then-rename, so there are no temp objects to sweep either.

Reads go through a local :class:`~onmodel.blobcache.ReadCache` of verified copies, so code
that needs a file (providers' inputs, checkers, thumbnails, exports) gets one; a put fills it
too, so the machine that made an image never downloads it.

Endpoint, credentials and region are the AWS SDK's own (boto3 reads them): ``AWS_ENDPOINT_URL``
or ``AWS_ENDPOINT_URL_S3`` for MinIO, R2, GCS's S3 API; ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``, or ``AWS_PROFILE`` and its files; ``AWS_REGION``. botocore reads
the addressing style only from the config file (``s3 = addressing_style = ...`` in a profile);
when that says nothing and the endpoint is not AWS's, path-style addressing is used
(``endpoint/bucket/key``), which every S3-compatible server answers, where virtual-host style
needs wildcard DNS.

Every failure becomes a one-line :class:`~onmodel.blobs.BlobStoreError` (no such bucket,
access denied, endpoint unreachable, time-out); the secret key is never part of one.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from onmodel.blobcache import ReadCache, parse_cap
from onmodel.blobs import (
    IN_USE_GRACE,
    Blob,
    BlobIntegrityError,
    BlobMissingError,
    BlobStoreError,
    BlobStoreURLError,
    Damage,
    StoredFile,
    blob_name,
    extension,
    is_blob_name,
    sha256_bytes,
)

_CHUNK = 1 << 20
TOUCH_AFTER = IN_USE_GRACE / 2
"""A reused object older than this is renewed (copied onto itself) so ``db check`` counts it
as in use; a younger one is left alone, so a series of puts costs one copy, not one each."""
_MIME = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}
_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "AllAccessDisabled",
    "403",
}
_ABSENT = {"NoSuchKey", "404", "NotFound"}


def _same_bytes(head: dict[str, Any], size: int, md5: bytes) -> bool:
    """Whether a stored object holds these bytes, as far as a HEAD can tell: the size, and the
    ETag where it is the MD5 of the whole object (a single PUT, as onmodel's; a multipart or
    encrypted object's ETag is something else, and only its size is compared)."""
    if head["ContentLength"] != size:
        return False
    etag = str(head.get("ETag", "")).strip('"')
    if len(etag) != 32 or not all(c in "0123456789abcdef" for c in etag.lower()):
        return True
    return etag.lower() == md5.hex()


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> ``(bucket, prefix)``; the prefix may be empty."""
    rest = url[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not bucket or any(c.isspace() for c in rest) or "//" in prefix:
        raise BlobStoreURLError(
            f"ONMODEL_BLOBS_URL={url[:80]!r} is not s3://bucket/prefix (a bucket name, then "
            "an optional folder-like prefix)"
        )
    return bucket, prefix


class S3BlobStore:
    def __init__(self, client: Any, bucket: str, prefix: str, cache: ReadCache) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.cache = cache

    @classmethod
    def from_url(cls, url: str, *, cache_root: Path, cache_mb: str = "") -> S3BlobStore:
        bucket, prefix = parse_url(url)
        cache = ReadCache(cache_root, parse_cap(cache_mb))
        return cls(make_client(), bucket, prefix, cache)

    # ------------------------------------------------------------------ names

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def where(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(name)}"

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def path_for(self, sha256: str, fmt: str) -> Path:
        return self.cache.path_for(sha256, fmt)

    # ------------------------------------------------------------------ writing

    def put(self, data: bytes, fmt: str) -> Blob:
        sha256 = sha256_bytes(data)
        key = self._key(blob_name(sha256, fmt))
        digest = hashlib.md5(data, usedforsecurity=False).digest()
        with self._errors(f"storing {sha256[:12]}…"):
            head = self._head(key)
            if head is not None and _same_bytes(head, len(data), digest):
                if _timestamp(head["LastModified"]) < time.time() - TOUCH_AFTER.total_seconds():
                    self._renew(key, sha256, fmt)
            else:  # absent, or damaged (another size or MD5): write the good bytes
                md5 = base64.b64encode(digest)
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=data,
                    ContentMD5=md5.decode("ascii"),
                    ContentType=_MIME.get(extension(fmt), "application/octet-stream"),
                    Metadata={"sha256": sha256},
                )
        path = self.cache.fill(sha256, fmt, data)
        return Blob(sha256=sha256, path=path, size=len(data))

    def put_file(self, source: Path, fmt: str) -> Blob:
        return self.put(source.read_bytes(), fmt)

    def _renew(self, key: str, sha256: str, fmt: str) -> None:
        """Copy the object onto itself, on the server: same bytes, new ``LastModified``."""
        self.client.copy_object(
            Bucket=self.bucket,
            Key=key,
            CopySource={"Bucket": self.bucket, "Key": key},
            MetadataDirective="REPLACE",
            ContentType=_MIME.get(extension(fmt), "application/octet-stream"),
            Metadata={"sha256": sha256},
        )

    # ------------------------------------------------------------------ reading

    def read(self, sha256: str, fmt: str) -> bytes:
        cached = self.cache.read(sha256, fmt)
        if cached is not None:
            return cached
        name = blob_name(sha256, fmt)
        with self._errors(f"reading {sha256[:12]}…"), self._absent(name):
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(name))
            data: bytes = response["Body"].read()
        if sha256_bytes(data) != sha256:
            raise BlobIntegrityError(
                f"blob {sha256} is damaged in the bucket: {self.where(name)} no longer "
                "matches its digest"
            )
        self.cache.fill(sha256, fmt, data)
        return data

    def local_path(self, sha256: str, fmt: str) -> Path:
        cached = self.cache.get(sha256, fmt)
        if cached is not None:
            return cached
        name = blob_name(sha256, fmt)
        with self._errors(f"reading {sha256[:12]}…"), self._absent(name):
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(name))
            return self.cache.fill_stream(
                sha256,
                fmt,
                response["Body"].iter_chunks(_CHUNK),
                source=f"the bytes of {self.where(name)}",
            )

    def exists(self, sha256: str, fmt: str) -> bool:
        return self.size(sha256, fmt) is not None

    def size(self, sha256: str, fmt: str) -> int | None:
        with self._errors(f"looking up {sha256[:12]}…"):
            head = self._head(self._key(blob_name(sha256, fmt)))
        return None if head is None else int(head["ContentLength"])

    def verify(self, sha256: str, fmt: str) -> bool:
        """Whether the blob is intact, proven by a verified local copy (fetched if needed, so
        a provider that is handed :meth:`local_path` next reads it without a download)."""
        try:
            self.local_path(sha256, fmt)
        except BlobIntegrityError:
            return False
        return True

    def check(self, name: str, sha256: str) -> Damage | None:
        """The object in the bucket (not the cached copy), streamed and hashed."""
        digest = hashlib.sha256()
        with self._errors(f"checking {name}"):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self._key(name))
            except _client_error() as exc:
                if _code(exc) in _ABSENT:
                    return Damage("missing", "the object is missing from the bucket")
                raise
            for chunk in response["Body"].iter_chunks(_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            return Damage("damaged", "the object no longer matches its digest")
        return None

    # ------------------------------------------------------------------ the listing

    def files(self) -> Iterator[StoredFile]:
        """Every blob object under the prefix, a listing page (1,000 keys) at a time."""
        start = f"{self.prefix}/" if self.prefix else ""
        with self._errors("listing the bucket"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    name = item["Key"][len(start) :]
                    if name.count("/") == 2 and is_blob_name(name):
                        modified = _timestamp(item["LastModified"])
                        yield StoredFile(name, False, modified, int(item["Size"]))

    def discard(self, name: str, *, unused_since: float) -> bool:
        """Delete an unreferenced object unless its ``LastModified`` (renewed by each
        :meth:`put` that reuses it) is since ``unused_since``.

        S3 has no atomic rename to move an object aside as the folder store does, so a put
        that reuses this very object between the HEAD and the DELETE (milliseconds) would lose
        it; the next ``db check`` reports the row's object missing, and the bytes can be put
        again. Conditional deletes are not offered by every S3-compatible server.
        """
        key = self._key(name)
        with self._errors(f"deleting {name}"):
            head = self._head(key)
            if head is None or _timestamp(head["LastModified"]) >= unused_since:
                return False
            self.client.delete_object(Bucket=self.bucket, Key=key)
        return True

    def remove_temp(self, name: str) -> None:
        """Nothing to do: an S3 PUT never leaves a partial object."""

    # ------------------------------------------------------------------ errors

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key)
        except _client_error() as exc:
            if _code(exc) in _ABSENT:
                return None
            raise
        return head

    @contextmanager
    def _absent(self, name: str) -> Iterator[None]:
        try:
            yield
        except _client_error() as exc:
            if _code(exc) in _ABSENT:
                raise BlobMissingError(f"{self.where(name)} is missing from the bucket") from None
            raise

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn botocore's exceptions into one line that names the store, never a secret."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        endpoint = self.client.meta.endpoint_url
        try:
            yield
        except ClientError as exc:
            code = _code(exc)
            if code == "NoSuchBucket":
                text = f"the bucket {self.bucket!r} does not exist at {endpoint}"
            elif code in _DENIED:
                text = (
                    f"{self.location} refused the credentials ({code}): check "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
                )
            else:
                message = exc.response.get("Error", {}).get("Message", "")
                text = f"{self.location} answered {code or 'an error'}: {message}".rstrip(": ")
            raise BlobStoreError(f"{doing}: {self._scrubbed(text)}") from None
        except (NoCredentialsError, PartialCredentialsError):
            raise BlobStoreError(
                f"{doing}: no AWS credentials for {self.location}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
            ) from None
        except ConnectionError as exc:
            raise BlobStoreError(
                f"{doing}: cannot reach the S3 endpoint {endpoint} ({type(exc).__name__}); "
                "check AWS_ENDPOINT_URL and that the server is up"
            ) from None
        except BotoCoreError as exc:
            raise BlobStoreError(f"{doing}: {self._scrubbed(str(exc))}") from None

    def _scrubbed(self, text: str) -> str:
        """``text`` with the secret key blanked, should a server ever echo it."""
        text = " ".join(text.split())
        try:
            credentials = self.client._request_signer._credentials
            secret = credentials.get_frozen_credentials().secret_key if credentials else None
        except Exception:  # no credentials to hide is fine
            secret = None
        return text.replace(secret, "***") if secret else text


def make_client() -> Any:
    """An S3 client configured as the AWS SDK configures itself, path-style for endpoints
    that are not AWS's unless the profile says otherwise (see the module's docstring)."""
    import boto3
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    try:
        core = botocore.session.get_session()
        session = boto3.Session(botocore_session=core)
        client = session.client("s3", config=Config(connect_timeout=10, read_timeout=60))
        configured = core.get_scoped_config().get("s3", {})
        if "addressing_style" in configured or _is_aws(client.meta.endpoint_url):
            return client
        path_style = Config(connect_timeout=10, read_timeout=60, s3={"addressing_style": "path"})
        return session.client("s3", config=path_style)
    except (BotoCoreError, ValueError) as exc:  # an unknown profile, a malformed endpoint
        raise BlobStoreError(f"cannot set up the S3 client: {' '.join(str(exc).split())}") from None


def _is_aws(endpoint: str) -> bool:
    from urllib.parse import urlsplit

    host = (urlsplit(endpoint).hostname or "").lower()
    return host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn")


def _client_error() -> type[Exception]:
    from botocore.exceptions import ClientError

    error: type[Exception] = ClientError
    return error


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", {}) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _timestamp(value: datetime) -> float:
    return value.timestamp()
