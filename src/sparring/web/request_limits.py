"""Limits applied at the edge, before any handler runs: body size, NUL bytes in the address, id ranges.

PostgreSQL refuses NUL in text and integers beyond its column types; SQLite
overflows at 2**63. Checking here turns all of these into a 4xx instead of a
database error, on every route at once. Form values are checked for NUL where
the form is parsed (``security.read_form``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Path
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_ROW_ID = 2**31 - 1  # PostgreSQL's INTEGER, the type of every numeric id here
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request is larger than {limit // 1024} KiB.")


class RequestLimits:
    """ASGI middleware: 413 for a body over ``max_body_bytes`` (declared or streamed), 400 for NUL in path or query.

    A declared Content-Length over the limit is refused before one byte is read;
    a streamed body is cut off as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").lower()
        if "\x00" in scope["path"] or b"%00" in query or b"\x00" in query:
            await PlainTextResponse("Bad request: the address contains a NUL character.", 400)(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await PlainTextResponse("Bad request: Content-Length is not a number.", 400)(scope, receive, send)
                return
            if int(declared) > self.max_body_bytes:
                await PlainTextResponse(BodyTooLarge(self.max_body_bytes).detail, 413,
                                        headers={"Connection": "close"})(scope, receive, send)
                return
        await self.app(scope, self._bounded(receive), send)

    def _bounded(self, receive: Receive) -> Receive:
        seen = 0

        async def bounded_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)  # the app's error handler answers 413
            return message

        return bounded_receive
