"""Assertions on the gateway's answers that several test modules make."""

from __future__ import annotations

import httpx


def assert_invalid(response: httpx.Response, param: str) -> None:
    """A 400 ``invalid_value`` naming ``param``, in OpenAI's envelope, not worth retrying."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error", "invalid_value", param), error
    assert response.headers["x-should-retry"] == "false"
