"""How the gemini provider words what the SDK raises: the kind the studio records, the wait a
rate limit asked for, and never a key in a message. Built from the SDK's own error classes, as
its client raises them for an API answer (no server needed)."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from google.genai import errors

from onmodel.providers.gemini.errors import map_error

KEY = "AIzaSyD-this-is-a-key-shaped-secret-000"


def api_error(code: int, status: str, message: str, *details: dict[str, Any]) -> errors.APIError:
    body: dict[str, Any] = {"error": {"code": code, "status": status, "message": message}}
    if details:
        body["error"]["details"] = list(details)
    kind = errors.ServerError if code >= 500 else errors.ClientError
    return kind(code, body)


def retry_info(delay: str) -> dict[str, str]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def test_an_invalid_key_is_auth_and_the_key_is_never_repeated() -> None:
    error = map_error(
        api_error(
            400,
            "INVALID_ARGUMENT",
            f"API key not valid: {KEY}",
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"},
        )
    )
    assert error.kind == "auth" and "GEMINI_API_KEY" in str(error)
    assert "AIza" not in str(error)


@pytest.mark.parametrize(("code", "status"), [(401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED")])
def test_refused_access_is_auth(code: int, status: str) -> None:
    assert map_error(api_error(code, status, "denied")).kind == "auth"


def test_a_rate_limit_carries_the_delay_the_api_asked_for() -> None:
    error = map_error(api_error(429, "RESOURCE_EXHAUSTED", "slow down", retry_info("12s")))
    assert (error.kind, error.retry_after) == ("rate_limit", 12.0)
    assert "retry after 12 s" in str(error)
    fractional = map_error(api_error(429, "RESOURCE_EXHAUSTED", "x", retry_info("1.5s")))
    assert fractional.retry_after == 1.5


def test_a_daily_quota_is_quota_not_a_rate_limit() -> None:
    error = map_error(
        api_error(
            429,
            "RESOURCE_EXHAUSTED",
            "quota",
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}],
            },
        )
    )
    assert error.kind == "quota"
    per_minute = map_error(
        api_error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}],
            },
            retry_info("31s"),
        )
    )
    assert (per_minute.kind, per_minute.retry_after) == ("rate_limit", 31.0)


def test_server_and_bad_request_texts_are_one_scrubbed_line() -> None:
    server = map_error(api_error(503, "UNAVAILABLE", "overloaded\n  try later"))
    assert server.kind == "server" and "\n" not in str(server)
    bad = map_error(api_error(400, "INVALID_ARGUMENT", f"bad field near {KEY}"))
    assert bad.kind == "invalid_request" and KEY not in str(bad) and "[redacted]" in str(bad)


def test_transport_failures_are_timeout_or_connection() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1beta/models/m:generateContent?key=x")
    assert map_error(httpx2.ReadTimeout("slow", request=request)).kind == "timeout"
    refused = map_error(httpx2.ConnectError("refused", request=request))
    assert refused.kind == "connection" and "key=x" not in str(refused)
    assert "http://127.0.0.1:9/v1beta/models/m:generateContent" in str(refused)
