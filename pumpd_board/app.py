"""The board's web application: one server-rendered page, its live updates as server-sent
events, and the page's own script and style (vendored in the package: no internet needed).

Read-only by construction: only GET routes, no form, and the only source of data is the
:class:`~pumpd_board.source.Hub`, whose client can send nothing but reads. Every response
carries a strict Content-Security-Policy (no inline script or style, nothing from another
origin); the Host header must name this board (a page elsewhere cannot reach it through DNS
rebinding); with an access token configured every route but the static files and the health
check needs it; the number of open event streams is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import jinja2
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .settings import BoardSettings
from .source import Hub, Snapshot
from .tiles import duration

PACKAGE_DIR: Final = Path(__file__).parent
TOKEN_COOKIE: Final = "pumpd_board_token"  # noqa: S105 (the cookie's name)
SEND_TIMEOUT_S: Final = 10.0
RETRY_MS: Final = 2000

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"cache-control", b"no-store"),
)


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response (streams included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


class HostCheck:
    """400 for a request whose Host header is not one of ``allowed`` (its port ignored;
    ``[v6]`` literals understood, which Starlette's TrustedHostMiddleware splits wrongly)."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app = app
        self.allowed = {h.lower().strip("[]") for h in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
            if raw.startswith("["):
                host = raw[1 : raw.find("]")] if "]" in raw else ""
            else:
                host = raw.split(":", 1)[0]
            if host not in self.allowed:
                await PlainTextResponse("Invalid host header", status_code=400)(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pumpd_board", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = duration
    return env


def allowed_hosts(settings: BoardSettings) -> list[str]:
    hosts = ["127.0.0.1", "localhost", "::1", *settings.allowed_hosts]
    if settings.host not in ("0.0.0.0", "::"):  # noqa: S104 (a name to compare, not a bind)
        hosts.append(settings.host)
    return hosts


class Board:
    """The routes, bound to one hub and one set of settings."""

    def __init__(self, settings: BoardSettings, hub: Hub) -> None:
        self.settings = settings
        self.hub = hub
        self.env = templates()
        self.streams = 0
        self._rendered: tuple[int, str] = (-1, "")

    # -- access ---------------------------------------------------------------------

    def _token_of(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return request.cookies.get(TOKEN_COOKIE)

    def _authorized(self, request: Request) -> bool:
        return self.settings.token_matches(self._token_of(request))

    def _refused(self) -> PlainTextResponse:
        return PlainTextResponse(
            "This board needs its access token: open it once as /?token=..., "
            "or send Authorization: Bearer ... (docs/board.md).",
            status_code=401,
        )

    # -- rendering ------------------------------------------------------------------

    def board_html(self, snap: Snapshot) -> str:
        """The tiles of a snapshot, rendered once for every page that shows it."""
        if self._rendered[0] == snap.seq:
            return self._rendered[1]
        age = snap.age_s(time.monotonic())
        html = self.env.get_template("_board.html").render(
            snap=snap,
            tiles=snap.tiles,
            age_ms=None if age is None else int(age * 1000),
        )
        self._rendered = (snap.seq, html)
        return html

    # -- routes ---------------------------------------------------------------------

    async def page(self, request: Request) -> HTMLResponse | PlainTextResponse | RedirectResponse:
        offered = request.query_params.get("token")
        if offered is not None and self.settings.access_token is not None:
            if not self.settings.token_matches(offered):
                return self._refused()
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(
                TOKEN_COOKIE,
                offered,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https"
                or request.headers.get("x-forwarded-proto") == "https",
                max_age=400 * 24 * 3600,
            )
            return response
        if not self._authorized(request):
            return self._refused()
        s = self.settings
        html = self.env.get_template("page.html").render(
            title=s.title,
            zone=s.timezone,
            stale_after_s=s.stale_after_s,
            alarm_tone=s.alarm_tone,
            board=self.board_html(self.hub.latest),
        )
        return HTMLResponse(html)

    async def events(self, request: Request) -> EventSourceResponse | PlainTextResponse:
        if not self._authorized(request):
            return self._refused()
        if self.streams >= self.settings.max_clients:
            return PlainTextResponse(
                f"this board already serves {self.settings.max_clients} screens "
                "([board] max_clients)",
                status_code=503,
                headers={"Retry-After": "10"},
            )
        self.streams += 1
        return _CountedStream(
            self,
            self._stream(),
            ping=15,
            send_timeout=SEND_TIMEOUT_S,
            headers={"X-Accel-Buffering": "no"},
        )

    async def _stream(self) -> AsyncIterator[ServerSentEvent]:
        """The current board at once, then each poll: the tiles while pumpd answers, only
        the link's state while it does not (the page keeps the last tiles and counts)."""
        snap = self.hub.latest
        yield ServerSentEvent(self.board_html(snap), event="board", retry=RETRY_MS)
        seq = snap.seq
        while True:
            snap = await self.hub.next_after(seq)
            seq = snap.seq
            if snap.link_ok:
                yield ServerSentEvent(self.board_html(snap), event="board")
            else:
                age = snap.age_s(time.monotonic())
                link = {
                    "link": "down",
                    "problem": snap.problem,
                    "age_ms": None if age is None else int(age * 1000),
                }
                yield ServerSentEvent(json.dumps(link), event="link")

    async def health(self, request: Request) -> JSONResponse:
        snap = self.hub.latest
        age = snap.age_s(time.monotonic())
        ok = snap.link_ok and age is not None and age <= self.settings.stale_after_s
        body: Mapping[str, Any] = {
            "pumpd": "ok" if snap.link_ok else "down",
            "age_s": None if age is None else round(age, 1),
            "streams": self.streams,
        }
        return JSONResponse(body, status_code=200 if ok else 503)


class _CountedStream(EventSourceResponse):
    """An event stream that gives its slot back however it ends (a stream whose client went
    away before its first event included)."""

    def __init__(self, board: Board, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._board = board

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._board.streams -= 1


def create_app(settings: BoardSettings, hub: Hub | None = None, *, poll: bool = True) -> Starlette:
    """The ASGI app; with ``poll`` the hub polls pumpd for as long as the app runs."""
    the_hub = hub if hub is not None else Hub(settings)
    board = Board(settings, the_hub)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(the_hub.run()) if poll else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = Starlette(
        routes=[
            Route("/", board.page, methods=["GET"]),
            Route("/events", board.events, methods=["GET"]),
            Route("/healthz", board.health, methods=["GET"]),
            Mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static"),
        ],
        middleware=list(_middleware(settings)),
        lifespan=lifespan,
    )
    app.state.board = board
    return app


def _middleware(settings: BoardSettings) -> Iterator[Middleware]:
    yield Middleware(SecurityHeaders)
    yield Middleware(HostCheck, allowed=allowed_hosts(settings))
