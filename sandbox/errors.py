"""The error family: every failure a client can be answered with, and ConfigError.

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
    │   ├── ClientGone           499  the client left before its request was read: journaled, not answered
    │   ├── InternalError        500  a bug in the sandbox; never expected
    │   ├── Overloaded           503  more open connections than --limit-concurrency
    │   └── StoreUnavailable     503  the store (a Redis server, a SQLite file) cannot be reached
    └── ConfigError              bad configuration found at start; never reaches a client

`wire.render` is the one place any exception becomes what the client gets (the dashboard shows the
same error as a page to a browser). Scenario outcomes are not exceptions: they are replies with an
error envelope built by `envelope()`, so that a scripted decline and a real one look the same.
"""

from __future__ import annotations

from typing import Any


def envelope(code: str, message: str, param: str | None = None, **extra: Any) -> dict[str, Any]:
    """The error body every failure uses: `{"error": {"code", "message", "param", ...}}`."""
    error: dict[str, Any] = {"code": code, "message": message, "param": param}
    error.update(extra)
    return {"error": error}


class ApiError(Exception):
    """A failure the client is answered with: its status, and the envelope's code, message and param."""

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
    """400: the request breaks the contract or a money rule."""

    status = 400


class Unauthorized(ApiError):
    """401: no bearer token, or one that fails verification."""

    status = 401

    def __init__(self, message: str) -> None:
        super().__init__("unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    """403: a browser's cross-site write, or a control body that a form could send."""

    status = 403


class NotFound(ApiError):
    """404: an unknown route or resource."""

    status = 404


class MethodNotAllowed(ApiError):
    """405: a known route, a wrong method; `Allow` names the right ones."""

    status = 405

    def __init__(self, method: str, allowed: list[str]) -> None:
        super().__init__(
            "method_not_allowed",
            f"{method} is not allowed here; use {', '.join(allowed)}.",
            headers={"Allow": ", ".join(allowed)},
        )


class RequestTimeout(ApiError):
    """408: the body stalled for --header-timeout seconds."""

    status = 408

    def __init__(self, seconds: float) -> None:
        message = f"The request body stalled for {seconds:g} s; send it without pauses."
        super().__init__("request_timeout", message, headers={"Connection": "close"})


class Conflict(ApiError):
    """409: an Idempotency-Key is in use by a request still in flight."""

    status = 409


class PayloadTooLarge(ApiError):
    """413: the body is over the size limit (1 MiB)."""

    status = 413


class UnsupportedMedia(ApiError):
    """415: the body is not application/json."""

    status = 415


class Misdirected(ApiError):
    """421: a Host name the sandbox does not answer (a guard against DNS rebinding)."""

    status = 421


class HeadersTooLarge(ApiError):
    """431: the request headers are over the limit in all."""

    status = 431


class ClientGone(ApiError):
    """499 (nginx's "client closed request"): the client left mid-request; journaled, not answered."""

    status = 499

    def __init__(self, when: str = "its request was read") -> None:
        super().__init__("client_gone", f"The client closed the connection before {when}.")


class InternalError(ApiError):
    """500: a bug in the sandbox; never expected (the exception behind it is raised again)."""

    status = 500

    def __init__(self) -> None:
        super().__init__("internal_error", "The sandbox hit a bug; please report it.")


class Overloaded(ApiError):
    """503: more open connections than --limit-concurrency."""

    status = 503

    def __init__(self, limit: int) -> None:
        message = f"The sandbox has more than {limit} open connections (--limit-concurrency); retry shortly."
        super().__init__("overloaded", message, headers={"Connection": "close", "Retry-After": "1"})


class StoreUnavailable(ApiError):
    """503: the store (a Redis server, a SQLite file) cannot be reached; the sandbox recovers when it can."""

    status = 503

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            "store_unavailable",
            f"The sandbox's store is unavailable ({detail[:200]}); retry when it is back.",
            headers={"Retry-After": "1"},
        )


class ConfigError(Exception):
    """Bad configuration: the message names the file, the place and the fix."""
