"""The error family, and the one place an error becomes the wire envelope.

    Exception
    ├── ApiError                 a failure the client sees: HTTP status, code, message, param
    │   ├── InvalidRequest       400  the request breaks the contract or a money rule
    │   ├── Unauthorized         401  no bearer token, or one that fails verification
    │   ├── Forbidden            403  a browser's cross-site write, or a control body a form could send
    │   ├── NotFound             404  unknown route or resource
    │   ├── MethodNotAllowed     405  known route, wrong method
    │   ├── RequestTimeout       408  the body stalled
    │   ├── Conflict             409  an Idempotency-Key is in use by a request in flight
    │   ├── PayloadTooLarge      413  body over the limit
    │   ├── UnsupportedMedia     415  body is not application/json
    │   ├── Misdirected          421  a Host name the sandbox does not answer (DNS rebinding)
    │   ├── HeadersTooLarge      431  request headers over the limit
    │   ├── InternalError        500  a bug in the sandbox; never expected
    │   └── Overloaded           503  more open connections than --limit-concurrency
    └── ConfigError              bad configuration found at start; never reaches a client

Scenario outcomes are not exceptions: they are replies with an error envelope built by
`envelope()`, so that a scripted decline and a real one look the same on the wire.
"""

from __future__ import annotations

from typing import Any


def envelope(code: str, message: str, param: str | None = None, **extra: Any) -> dict[str, Any]:
    """The error body every failure uses: `{"error": {"code", "message", "param", ...}}`."""
    error: dict[str, Any] = {"code": code, "message": message, "param": param}
    error.update(extra)
    return {"error": error}


class ApiError(Exception):
    status = 500

    def __init__(
        self,
        code: str,
        message: str,
        param: str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return envelope(self.code, self.message, self.param)


class InvalidRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401

    def __init__(self, message: str) -> None:
        super().__init__("unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class MethodNotAllowed(ApiError):
    status = 405

    def __init__(self, method: str, allowed: list[str]) -> None:
        super().__init__(
            "method_not_allowed",
            f"{method} is not allowed here; use {', '.join(allowed)}.",
            headers={"Allow": ", ".join(allowed)},
        )


class RequestTimeout(ApiError):
    status = 408

    def __init__(self, seconds: float) -> None:
        message = f"The request body stalled for {seconds:g} s; send it without pauses."
        super().__init__("request_timeout", message, headers={"Connection": "close"})


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMedia(ApiError):
    status = 415


class Misdirected(ApiError):
    status = 421


class HeadersTooLarge(ApiError):
    status = 431


class InternalError(ApiError):
    status = 500

    def __init__(self) -> None:
        super().__init__("internal_error", "The sandbox hit a bug; please report it.")


class Overloaded(ApiError):
    status = 503

    def __init__(self, limit: int) -> None:
        message = f"The sandbox has more than {limit} open connections (--limit-concurrency); retry shortly."
        super().__init__("overloaded", message, headers={"Connection": "close", "Retry-After": "1"})


class ConfigError(Exception):
    """Bad configuration: the message names the file, the place and the fix."""
