"""Typed errors that carry their HTTP status, rendered as OpenAI's error envelope."""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorObject(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """OpenAI's error envelope, the body of every failed /v1 and /admin call."""

    error: ErrorObject


# The documented failures of every /v1 and /admin route (FastAPI would otherwise document a
# 422 this API never sends).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse,
            "description": "Refused; error.type and error.code say why (see the README's "
                           "error table). Nothing was charged."},
    "5XX": {"model": ErrorResponse,
            "description": "The gateway or the upstream failed; the x-should-retry header "
                           "says whether the same request may succeed later."},
}


class GatewayError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = None
    # A retry of the same request cannot succeed: tell the SDK not to try.
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None, status: int | None = None) -> None:
        # Messages may quote client input; keep them encodable whatever the client sent.
        message = message.encode("utf-8", "replace").decode("utf-8")
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}
        if code is not None:
            self.code = code  # type: ignore[misc]
        if status is not None:
            self.status = status  # type: ignore[misc]

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        headers.setdefault("x-should-retry", "true" if self.retryable else "false")
        return headers


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_value"


class Unauthorized(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class RangeNotSatisfiable(GatewayError):
    status = 416
    type = "invalid_request_error"
    code = "range_not_satisfiable"


def unsatisfiable(content_range: str | None) -> RangeNotSatisfiable:
    # Content-Range: bytes */size tells a resuming client how large the asset is.
    headers = {"Content-Range": content_range} if content_range else None
    return RangeNotSatisfiable("The requested range is outside the asset.", headers=headers)


class VideoNotReady(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "video_not_ready"


class IdempotencyKeyReused(GatewayError):
    """The key was first sent with another request: no retry of this one can succeed."""

    status = 409
    type = "invalid_request_error"
    code = "idempotency_key_reused"


class IdempotencyKeyInUse(GatewayError):
    """The first request with this key is still being submitted."""

    status = 409
    type = "invalid_request_error"
    code = "idempotency_key_in_use"
    # x-should-retry: true, so the SDK (which retries 409s anyway) waits Retry-After and asks
    # again: by then the first request has usually finished, and the same request with the
    # same key gets its job back (or, if the first started no upstream job, makes one). The
    # key lets one request submit at a time, so no retry can start a second job; "false"
    # would only fail a request that needed a moment.
    retryable = True

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})


class RequestTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RequestTimeout(GatewayError):
    """The client did not send its whole request within the server's deadline."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"
    retryable = True


class InsufficientQuota(GatewayError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"

    def __init__(self, message: str) -> None:
        # Every 429 carries Retry-After; x-should-retry: false still stops the SDK's own
        # retries, since only a top-up helps.
        super().__init__(message, headers={"Retry-After": "60"})


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"
    retryable = True

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})


class NoUpstream(GatewayError):
    status = 503
    type = "server_error"
    code = "no_upstream"


class Overloaded(GatewayError):
    """The process holds as many connections as it is configured to."""

    status = 503
    type = "server_error"
    code = "overloaded"
    retryable = True

    def __init__(self) -> None:
        super().__init__("The gateway is at its connection limit; retry shortly.",
                         headers={"Retry-After": "1"})


class UpstreamFailed(GatewayError):
    """Every eligible upstream failed at create; no job exists and nothing was charged."""

    status = 502
    type = "server_error"
    code = "upstream_error"
    retryable = True


class UpstreamOutcomeUnknown(UpstreamFailed):
    """The upstream may have started a job; a blind retry could start a second one."""

    retryable = False


class UpstreamRejected(GatewayError):
    """The upstream refused the request with a 4xx; its sanitized words are passed on.

    ``upstream_error`` is what the upstream said, for the operator: never in ``body()``.
    """

    type = "invalid_request_error"

    def __init__(self, message: str, *, status: int, code: str, param: str | None,
                 upstream_error: str | None) -> None:
        super().__init__(message, status=status, code=code, param=param)
        self.upstream_error = upstream_error


async def _gateway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.response_headers())


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":  # its loc is an offset into the body, no param
        return await _gateway_error(request, InvalidRequest(
            f"The request body is malformed JSON: {first.get('ctx', {}).get('error', '')}."))
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    param = ".".join(loc) or None
    error = InvalidRequest(f"Invalid value for '{param}': {first.get('msg', 'invalid')}",
                           param=param)
    return await _gateway_error(request, error)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        error: GatewayError = NotFound(f"Unknown route {request.method} {request.url.path}")
    elif exc.status_code == 405:
        error = InvalidRequest(f"Method {request.method} not allowed here",
                               code="method_not_allowed", status=405)
    elif isinstance(exc.__cause__, RecursionError):  # FastAPI's JSON parse ran out of stack
        error = InvalidRequest("The request body is malformed JSON: it nests too deeply.")
    else:
        error = InvalidRequest(str(exc.detail), code="invalid_request", status=exc.status_code)
    return await _gateway_error(request, error)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
