"""The web application: one Starlette app over the daemon's App (database, config, secret, outbox)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tracker.app import App
from tracker.web import dashboard, engagement, tracking, unsubscribe, webhooks


def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def create_app(app: App) -> Starlette:
    web = app.config.web
    https = bool(web and web.public_url.startswith("https://"))
    routes = [Route("/health", health), *tracking.routes(), *unsubscribe.routes(), *engagement.routes(),
              *webhooks.routes(), *dashboard.routes()]
    middleware = [Middleware(SessionMiddleware, secret_key=app.outbox.secret.hex(), https_only=https,
                             same_site="strict", session_cookie="trackmail_session", max_age=12 * 3600)]
    application = Starlette(routes=routes, middleware=middleware)
    application.state.app = app
    return application
