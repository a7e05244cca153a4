"""The one middleware: request ids, the body-size limit and one access-log line per request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from census_salary.api.problems import Problem, problem_response

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("census_salary.access")

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContext:
    """Request id (echoed or made), body-size limit and one access-log line per request.

    Pure ASGI, so the body limit holds for chunked uploads without Content-Length too.
    The body itself is never logged.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get(REQUEST_ID_HEADER.lower(), "")
        request_id = given if _SAFE_REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        limit = self.max_body_bytes
        too_large = Problem(
            413,
            "Payload Too Large",
            f"The request body is larger than the limit of {limit} bytes; send fewer rows "
            "per request.",
        )

        responded = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large
            return message

        async def guarded() -> None:
            length = headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                raise too_large
            await self.app(scope, limited_receive, send_with_id)

        try:
            await guarded()
        except Problem as problem:
            await problem_response(Request(scope), problem)(scope, receive, send_with_id)
        except Exception:
            # Answered here, not by Starlette's outer error middleware, so that the 500 too
            # carries the request id; the details go to the log, never to the client.
            logger.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if responded:
                raise
            crash = Problem(500, "Internal Server Error", "Something went wrong on our side.")
            await problem_response(Request(scope), crash)(scope, receive, send_with_id)
        finally:
            access_logger.info(
                "method=%s path=%s status=%s duration_ms=%.1f request_id=%s",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
                request_id,
            )
