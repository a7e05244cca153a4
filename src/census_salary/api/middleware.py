"""The one middleware: request ids, security headers, HEAD, the body's size and time limits,
and one access-log line per request."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from census_salary.api.problems import Problem, problem_response
from census_salary.api.telemetry import Telemetry, route_of

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("census_salary.access")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_NAME = REQUEST_ID_HEADER.lower().encode("ascii")
_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
# nginx's status for a client that went away before it was answered; it is only logged,
# since nobody is left to send it to.
CLIENT_CLOSED_REQUEST = 499

# Everything the app serves is its own: the form page, its script and style, the docs'
# assets (see routes/docs.py), the OpenAPI schema. Nothing inline, nothing from elsewhere.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data:",  # the page's empty favicon and Swagger UI's icons
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# Added to every response that does not set its own (a route may loosen its CSP).
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
# The same as raw ASGI header lines, encoded once.
_SECURITY_HEADER_LINES = [
    (name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()
]
_SECURITY_HEADER_NAMES = frozenset(name for name, _ in _SECURITY_HEADER_LINES)


def too_large(max_body_bytes: int) -> Problem:
    """The 413 of a body past the limit: as it arrives (here), or as announced (/predict)."""
    return Problem(
        413,
        "Payload Too Large",
        f"The request body is larger than the limit of {max_body_bytes} bytes; send "
        "fewer rows per request.",
    )


class RequestContext:
    """What every request goes through, whatever route answers it.

    - a request id, echoed or made, on the response and in the log;
    - the security headers (`SECURITY_HEADERS`) on every response, errors and docs too;
    - `HEAD` answered as `GET` without the body, wherever `GET` is (uptime monitors);
    - the body limits: over `max_body_bytes` is a 413 (refused unread by /predict when
      Content-Length says so), one not fully arrived within
      `body_timeout` seconds a 408 that closes the connection;
    - a client that disconnects before its answer is logged as status 499, not as a 500;
    - one access-log line per request, never the body, and the request's count and
      latency in the app's `Telemetry` (unless `[serve] metrics = "off"`).

    Pure ASGI, so the body limits hold for chunked uploads without Content-Length too.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        body_timeout: float,
        telemetry: Telemetry | None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "HEAD":
            scope = {**scope, "method": "GET"}
        given = None
        for name, value in scope["headers"]:  # lower-case names, as ASGI servers give them
            if name == _REQUEST_ID_NAME:
                given = value
        if given is not None and _SAFE_REQUEST_ID.fullmatch(given):
            request_id = given.decode("ascii")
        else:
            request_id = uuid.uuid4().hex
            given = request_id.encode("ascii")
        scope.setdefault("state", {})["request_id"] = request_id
        path = scope["path"]
        if not path.isprintable():  # a %0a in the path must not start a forged log line
            path = path.encode("unicode_escape").decode("ascii")
        started = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + self.body_timeout
        status = 500
        limit = self.max_body_bytes
        responded = disconnected = body_complete = False
        request_id_header = (_REQUEST_ID_NAME, given)

        async def send_with_headers(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                headers = message.get("headers", [])
                added = _SECURITY_HEADER_LINES
                if any(name.lower() in _SECURITY_HEADER_NAMES for name, _ in headers):
                    present = {name.lower() for name, _ in headers}
                    added = [line for line in added if line[0] not in present]
                message = {**message, "headers": [*headers, *added, request_id_header]}
            elif message["type"] == "http.response.body" and method == "HEAD":
                message = {**message, "body": b""}
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received, disconnected, body_complete
            if body_complete:  # what follows the body is only ever a disconnect: no deadline
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise self._too_slow() from None
            if message["type"] == "http.disconnect":
                disconnected = True
            elif message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(self.max_body_bytes)
                body_complete = not message.get("more_body", False)
            return message

        telemetry = self.telemetry
        if telemetry is not None:
            telemetry.in_flight.inc()
        try:
            await self.app(scope, limited_receive, send_with_headers)
        except Problem as problem:
            await problem_response(Request(scope), problem)(scope, receive, send_with_headers)
        except Exception:
            if disconnected and not responded:
                # Starlette's ClientDisconnect, or whatever the half-read body led to: the
                # client's doing, not ours, and there is no one left to answer.
                status = CLIENT_CLOSED_REQUEST
                logger.info(
                    "client disconnected before it was answered: %s %s request_id=%s",
                    method,
                    path,
                    request_id,
                )
                return
            # Answered here, not by Starlette's outer error middleware, so that the 500 too
            # carries the request id; the details go to the log, never to the client.
            logger.exception("unexpected error on %s %s", method, path)
            if responded:
                raise
            crash = Problem(500, "Internal Server Error", "Something went wrong on our side.")
            await problem_response(Request(scope), crash)(scope, receive, send_with_headers)
        finally:
            seconds = time.perf_counter() - started
            if telemetry is not None:
                telemetry.in_flight.dec()
                telemetry.request_done(route_of(scope), method, status, seconds)
            if access_logger.isEnabledFor(logging.INFO):  # no formatting when it is off
                access_logger.info(
                    "method=%s path=%s status=%s duration_ms=%.1f request_id=%s",
                    method,
                    path,
                    status,
                    seconds * 1000,
                    request_id,
                )

    def _too_slow(self) -> Problem:
        return Problem(
            408,
            "Request Timeout",
            f"The request body did not arrive in full within {self.body_timeout:g} seconds; "
            "send it again, all at once.",
            headers={"Connection": "close"},
        )
