"""A local Gemini API server (``models.generateContent``) for the gemini provider's tests.

Why a real server: the google-genai SDK sends through httpx2, and mocking the SDK would skip
what is worth testing (its JSON encoding of parts and thought signatures, its retries, its
error classes). Tests point the real client at this server through
``GOOGLE_GEMINI_BASE_URL`` and everything goes over HTTP on 127.0.0.1.

What it does:

* serves ``POST /v1beta/models/{model}:generateContent`` and checks the request the way the
  documented API does (REST reference and image-generation guide, read 2026-12-02):
  ``x-goog-api-key`` present (and right, when the fake is given a key); ``contents`` a list
  of ``{role: user|model, parts}`` ending with a user turn; each part exactly one of
  ``text`` or ``inlineData {mimeType, data (base64)}`` (snake_case spellings accepted, as the
  API accepts them); images decodable, of an image MIME type, at most 14 in the new message;
  ``generationConfig.responseModalities`` asking for ``IMAGE``; ``imageConfig.aspectRatio``
  and ``imageSize`` among the documented values (Gemini 2.5 Flash Image: 1K only); a model
  turn's image part carrying back the ``thoughtSignature`` the fake issued with it
  (Gemini 3 models refuse a history without its signatures). A refused request is answered
  400 ``INVALID_ARGUMENT`` and kept in :attr:`FakeGemini.rejected`;
* answers with ``candidates[0].content.parts``: a text part and an ``inlineData`` PNG (tiny,
  its colour a hash of the last user text, its shape the aspect ratio) with a
  ``thoughtSignature``; ``usageMetadata`` split by modality; ``responseId``, ``modelVersion``;
* injects scripted faults (:meth:`FakeGemini.fail_next`): ``rate_limit`` (429 with
  ``RetryInfo.retryDelay`` and/or ``Retry-After``), ``quota`` (429, a per-day quota),
  ``server`` (500), ``unavailable`` (503), ``prompt_blocked`` (``promptFeedback.blockReason``),
  ``image_safety`` (a candidate ending ``IMAGE_SAFETY``), ``text_only`` (no image), ``slow``;
* records every request (:class:`Recorded`), with the key header masked: no key is kept or
  logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import re
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from PIL import Image, ImageDraw
from werkzeug.wrappers import Request, Response

from localserver import LocalServer

log = logging.getLogger("fakegemini")

MODELS = frozenset(
    {
        "gemini-3-pro-image",
        "nano-banana-pro-preview",
        "gemini-3.1-flash-image",
        "gemini-2.5-flash-image",
        "gemini-3.1-flash-lite-image",
        "gemini-nano-banana-2.1",
    }
)
ONE_K_ONLY = frozenset({"gemini-2.5-flash-image"})
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "9:16", "16:9", "21:9")
IMAGE_SIZES = ("1K", "2K", "4K")
IMAGE_MIME_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})
MAX_IMAGES = 14
OUTPUT_TOKENS = {"1K": 1120, "2K": 1120, "4K": 2000}
INPUT_IMAGE_TOKENS = 560
FAULTS = frozenset(
    {
        "rate_limit",
        "quota",
        "server",
        "unavailable",
        "prompt_blocked",
        "image_safety",
        "text_only",
        "slow",
    }
)
_PATH = re.compile(r"^/v1beta/models/([^/:]+):generateContent$")


@dataclass
class Recorded:
    """One request as received (the key header reduced to whether it was there)."""

    path: str
    model: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int = 0
    rejection: str = ""

    @property
    def contents(self) -> list[dict[str, Any]]:
        found = self.body.get("contents")
        return found if isinstance(found, list) else []

    @property
    def message(self) -> list[dict[str, Any]]:
        """The new user message's parts (the last content)."""
        return list(self.contents[-1].get("parts") or []) if self.contents else []

    @property
    def history(self) -> list[dict[str, Any]]:
        """The contents before the new message: the chat history sent."""
        return self.contents[:-1]

    def images(self, parts: list[dict[str, Any]] | None = None) -> list[bytes]:
        """The decoded images of ``parts`` (default: the new message), in order."""
        return [
            b64decode(_inline(part)["data"])
            for part in (self.message if parts is None else parts)
            if _inline(part)
        ]

    @property
    def image_config(self) -> dict[str, Any]:
        return dict(_get(self.generation_config, "imageConfig", "image_config") or {})

    @property
    def generation_config(self) -> dict[str, Any]:
        return dict(_get(self.body, "generationConfig", "generation_config") or {})


@dataclass
class Fault:
    kind: str
    retry_delay: str | None = "1s"
    retry_after: str | None = None
    seconds: float = 0.0


@dataclass
class _Issued:
    signatures: dict[str, str] = field(default_factory=dict)  # image sha256 -> signature


class ApiError(Exception):
    def __init__(
        self,
        code: int,
        status: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def _invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


def _get(data: Any, camel: str, snake: str) -> Any:
    if not isinstance(data, dict):
        return None
    return data.get(camel, data.get(snake))


def b64decode(text: object) -> bytes:
    """Standard or URL-safe base64, as the API takes both (protobuf JSON's ``bytes``; the
    SDK sends the URL-safe alphabet)."""
    normal = str(text).replace("-", "+").replace("_", "/")
    return base64.b64decode(normal + "=" * (-len(normal) % 4), validate=True)


def _inline(part: Any) -> dict[str, Any]:
    found = _get(part, "inlineData", "inline_data")
    if not isinstance(found, dict):
        return {}
    return {"data": found.get("data"), "mime_type": _get(found, "mimeType", "mime_type")}


class FakeGemini(LocalServer):
    """A threaded Gemini API server on 127.0.0.1; use as a context manager, point the SDK at
    :attr:`base_url` (``GOOGLE_GEMINI_BASE_URL``)."""

    def __init__(self, *, api_key: str | None = None, image_scale: int = 8) -> None:
        """``api_key`` set: only that key is accepted (400 ``API_KEY_INVALID`` otherwise, as
        the real API answers); None accepts any non-empty key."""
        self.api_key = api_key
        self.image_scale = image_scale
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._requests: list[Recorded] = []
        self._faults: deque[Fault] = deque()
        self._issued = _Issued()
        self.errors: list[str] = []

    # ------------------------------------------------------------------ lifecycle

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()  # a slow answer in progress stops waiting
        super().__exit__(exc_type, exc, tb)

    @property
    def base_url(self) -> str:
        """What ``GOOGLE_GEMINI_BASE_URL`` is set to."""
        return self.url

    # ------------------------------------------------------------------ test controls

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    @property
    def accepted(self) -> list[Recorded]:
        return [each for each in self.requests if not each.rejection]

    @property
    def rejected(self) -> list[Recorded]:
        return [each for each in self.requests if each.rejection]

    def fail_next(
        self,
        kind: str,
        times: int = 1,
        *,
        retry_delay: str | None = "1s",
        retry_after: str | None = None,
        seconds: float = 0.0,
    ) -> None:
        """Answer the next ``times`` requests with fault ``kind`` (see the module docstring)."""
        assert kind in FAULTS, kind
        with self._lock:
            self._faults.extend(
                Fault(kind, retry_delay, retry_after, seconds) for _ in range(times)
            )

    @staticmethod
    def color_for(prompt: str) -> tuple[int, int, int]:
        digest = hashlib.sha256(prompt.encode("utf-8")).digest()
        return digest[0], digest[1], digest[2]

    # ------------------------------------------------------------------ WSGI

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            body = json.loads(request.get_data() or b"{}")
        except ValueError:
            body = None
        match = _PATH.match(request.path)
        headers = {k.lower(): v for k, v in request.headers.items()}
        key = headers.pop("x-goog-api-key", "")
        headers["x-goog-api-key"] = "present" if key else ""
        record = Recorded(
            request.path,
            match.group(1) if match else "",
            headers,
            body if isinstance(body, dict) else {},
        )
        with self._lock:
            self._requests.append(record)
        try:
            response = self._answer(request.method, match, key, body, record)
        except ApiError as error:
            record.rejection = error.message if error.code == 400 else ""
            response = self._json(error.code, error.body(), error.headers)
        except Exception as exc:  # a bug in the fake must not look like an API answer
            log.exception("FakeGemini crashed")
            self.errors.append(repr(exc))
            response = self._json(500, ApiError(500, "INTERNAL", "fake crashed").body())
        record.status = response.status_code
        return response(environ, start_response)

    @staticmethod
    def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
        response = Response(json.dumps(body), status=status, content_type="application/json")
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    def _answer(
        self, method: str, match: re.Match[str] | None, key: str, body: Any, record: Recorded
    ) -> Response:
        if method != "POST" or match is None:
            raise ApiError(404, "NOT_FOUND", f"no such method: {method} {record.path}")
        if not key:
            raise ApiError(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity.",
            )
        if self.api_key is not None and key != self.api_key:
            raise ApiError(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                    }
                ],
            )
        model = match.group(1)
        if model not in MODELS:
            raise ApiError(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta")
        if not isinstance(body, dict):
            raise _invalid("Invalid JSON payload received.")
        ratio, size, images_in, prompt = self._validate(model, body)
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            answer = self._fault(fault, model, images_in, prompt)
            if answer is not None:
                return answer
        return self._json(200, self._success(model, ratio, size, images_in, prompt))

    # ------------------------------------------------------------------ validation

    def _validate(self, model: str, body: dict[str, Any]) -> tuple[str, str, int, str]:
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise _invalid("* GenerateContentRequest.contents: contents is not specified")
        total_images = 0
        for index, content in enumerate(contents):
            if not isinstance(content, dict):
                raise _invalid(f"contents[{index}] is not an object")
            role = content.get("role")
            if role not in ("user", "model"):
                raise _invalid(f"contents[{index}].role must be user or model, not {role!r}")
            parts = content.get("parts")
            if not isinstance(parts, list) or not parts:
                raise _invalid(f"contents[{index}].parts must not be empty")
            for number, part in enumerate(parts):
                total_images += self._check_part(
                    model, role, part, f"contents[{index}].parts[{number}]"
                )
        if contents[-1].get("role") != "user":
            raise _invalid("the last content must have role user")
        message = contents[-1]["parts"]
        images_in = sum(1 for part in message if _inline(part))
        if images_in > MAX_IMAGES:
            raise _invalid(f"at most {MAX_IMAGES} images per request, got {images_in}")
        config = _get(body, "generationConfig", "generation_config")
        modalities = _get(config, "responseModalities", "response_modalities") or []
        if "IMAGE" not in [str(each).upper() for each in modalities]:
            raise _invalid(
                "generationConfig.responseModalities must include IMAGE for an image model"
            )
        seed = _get(config, "seed", "seed")
        if seed is not None and not (isinstance(seed, int) and 0 <= seed < 2**31):
            raise _invalid(f"generationConfig.seed must be an int32, not {seed!r}")
        image_config = _get(config, "imageConfig", "image_config") or {}
        ratio = _get(image_config, "aspectRatio", "aspect_ratio") or "1:1"
        size = _get(image_config, "imageSize", "image_size") or "1K"
        if ratio not in ASPECT_RATIOS:
            raise _invalid(f"imageConfig.aspectRatio {ratio!r} is not supported")
        if size not in IMAGE_SIZES or (model in ONE_K_ONLY and size != "1K"):
            raise _invalid(f"imageConfig.imageSize {size!r} is not supported by {model}")
        texts = [
            part.get("text", "") for part in message if isinstance(part, dict) and "text" in part
        ]
        return ratio, size, images_in, " ".join(texts)

    def _check_part(self, model: str, role: str, part: Any, where: str) -> int:
        if not isinstance(part, dict):
            raise _invalid(f"{where} is not an object")
        inline = _inline(part)
        kinds = [name for name in ("text", "inlineData", "inline_data") if name in part]
        if len(kinds) != 1:
            raise _invalid(f"{where} must hold exactly one of text or inlineData, has {kinds}")
        if not inline:
            return 0
        if inline["mime_type"] not in IMAGE_MIME_TYPES:
            raise _invalid(
                f"{where}.inlineData.mimeType {inline['mime_type']!r} is not an image type"
            )
        try:
            data = b64decode(inline["data"])
            with Image.open(io.BytesIO(data)) as picture:
                picture.verify()
        except (binascii.Error, ValueError, OSError) as exc:
            raise _invalid(f"{where}.inlineData.data is not a base64 image ({exc})") from exc
        if role == "model" and not model.startswith("gemini-2.5"):
            sent = _get(part, "thoughtSignature", "thought_signature")
            with self._lock:
                issued = self._issued.signatures.get(hashlib.sha256(data).hexdigest())
            if issued is not None and (sent is None or b64decode(sent) != b64decode(issued)):
                raise _invalid(
                    f"{where}: Image part is missing a thought_signature in content position "
                    "(a model turn must be sent back with the signature it came with)"
                )
        return 1

    # ------------------------------------------------------------------ answers

    def _image(self, prompt: str, ratio: str) -> bytes:
        """A figure (an ellipse in the prompt's colour) on a plain white ground, so the
        offline checks find a subject; the short edge is ``image_scale`` * 12 px."""
        across, down = (int(each) for each in ratio.split(":"))
        unit = self.image_scale * 12 / min(across, down)
        width, height = round(across * unit), round(down * unit)
        picture = Image.new("RGB", (width, height), (255, 255, 255))
        box = (width * 0.3, height * 0.15, width * 0.7, height * 0.85)
        ImageDraw.Draw(picture).ellipse(box, fill=self.color_for(prompt))
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        return buffer.getvalue()

    @staticmethod
    def _usage(prompt: str, images_in: int, image_out: int, text_out: int) -> dict[str, Any]:
        text_in = max(1, len(prompt) // 4)
        image_in = images_in * INPUT_IMAGE_TOKENS
        details = [{"modality": "TEXT", "tokenCount": text_in}]
        if image_in:
            details.append({"modality": "IMAGE", "tokenCount": image_in})
        usage: dict[str, Any] = {
            "promptTokenCount": text_in + image_in,
            "promptTokensDetails": details,
            "totalTokenCount": text_in + image_in + image_out + text_out,
        }
        if image_out or text_out:
            usage["candidatesTokenCount"] = image_out + text_out
            usage["candidatesTokensDetails"] = [
                {"modality": name, "tokenCount": count}
                for name, count in (("TEXT", text_out), ("IMAGE", image_out))
                if count
            ]
        return usage

    def _success(
        self, model: str, ratio: str, size: str, images_in: int, prompt: str
    ) -> dict[str, Any]:
        picture = self._image(prompt, ratio)
        signature = base64.b64encode(f"sig-{uuid.uuid4().hex}".encode()).decode("ascii")
        with self._lock:
            self._issued.signatures[hashlib.sha256(picture).hexdigest()] = signature
        text = "Here is the picture."
        usage = self._usage(prompt, images_in, OUTPUT_TOKENS[size], 6)
        usage["thoughtsTokenCount"] = 40
        usage["totalTokenCount"] += 40
        return {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "Thinking about the pose.", "thought": True},
                            {"text": text},
                            {
                                "inlineData": {
                                    "mimeType": "image/png",
                                    "data": base64.b64encode(picture).decode("ascii"),
                                },
                                "thoughtSignature": signature,
                            },
                        ],
                    },
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": f"resp-{uuid.uuid4().hex[:16]}",
        }

    def _fault(self, fault: Fault, model: str, images_in: int, prompt: str) -> Response | None:
        if fault.kind == "slow":
            self._stopping.wait(fault.seconds)
            return None
        if fault.kind in ("rate_limit", "quota"):
            quota_id = (
                "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
                if fault.kind == "quota"
                else "GenerateRequestsPerMinutePerProjectPerModel"
            )
            details: list[dict[str, Any]] = [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {"quotaMetric": "generate_content_requests", "quotaId": quota_id}
                    ],
                }
            ]
            if fault.retry_delay is not None:
                details.append(
                    {
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": fault.retry_delay,
                    }
                )
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            raise ApiError(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, please check your plan and billing details."
                if fault.kind == "quota"
                else "Resource has been exhausted (e.g. check quota).",
                details,
                headers,
            )
        if fault.kind == "server":
            raise ApiError(500, "INTERNAL", "An internal error has occurred.")
        if fault.kind == "unavailable":
            raise ApiError(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
        rid = f"resp-{uuid.uuid4().hex[:16]}"
        if fault.kind == "prompt_blocked":
            return self._json(
                200,
                {
                    "promptFeedback": {
                        "blockReason": "PROHIBITED_CONTENT",
                        "safetyRatings": [
                            {
                                "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                                "probability": "HIGH",
                                "blocked": True,
                            }
                        ],
                    },
                    "usageMetadata": self._usage(prompt, images_in, 0, 0),
                    "modelVersion": model,
                    "responseId": rid,
                },
            )
        if fault.kind == "image_safety":
            return self._json(
                200,
                {
                    "candidates": [
                        {
                            "finishReason": "IMAGE_SAFETY",
                            "index": 0,
                            "safetyRatings": [
                                {
                                    "category": "HARM_CATEGORY_SEXUALLY_EXPLICIT",
                                    "probability": "HIGH",
                                    "blocked": True,
                                },
                                {
                                    "category": "HARM_CATEGORY_HARASSMENT",
                                    "probability": "NEGLIGIBLE",
                                },
                            ],
                        }
                    ],
                    "usageMetadata": self._usage(prompt, images_in, 0, 0),
                    "modelVersion": model,
                    "responseId": rid,
                },
            )
        # text_only
        return self._json(
            200,
            {
                "candidates": [
                    {
                        "content": {
                            "role": "model",
                            "parts": [{"text": "I would rather describe it: a knight."}],
                        },
                        "finishReason": "STOP",
                        "index": 0,
                    }
                ],
                "usageMetadata": self._usage(prompt, images_in, 0, 12),
                "modelVersion": model,
                "responseId": rid,
            },
        )
