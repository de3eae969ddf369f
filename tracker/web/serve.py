"""Serving the web app with uvicorn inside the daemon's event loop (or alone, for `trackmail web`)."""

from __future__ import annotations

import asyncio
import logging
import socket

from tracker.app import App
from tracker.web.auth import admin_password

log = logging.getLogger("trackmail.web")


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # here, not in uvicorn: a taken port must fail before it is handed over
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


async def serve_web(app: App, stop: asyncio.Event) -> None:
    """Serve until `stop` is set; a port already taken is logged and the daemon carries on without pages."""
    import uvicorn

    from tracker.web.app import create_app

    web = app.config.web
    config = uvicorn.Config(create_app(app), host=web.host, port=web.port, log_level="warning", lifespan="off",
                            access_log=False)
    server = uvicorn.Server(config)
    password = admin_password(app)
    if not web.admin_password:
        log.info("dashboard login: user %r, one-time password %s (set admin_password in [web] to choose one)",
                 web.admin_user, password)
    try:
        sock = _bind(web.host, web.port)
    except OSError as exc:  # uvicorn would exit the whole process: several daemons may share one machine
        log.error("web pages not served: cannot listen on %s:%d (%s); the daemon goes on without them",
                  web.host, web.port, exc.strerror or exc)
        return
    log.info("web pages at %s (listening on %s:%d)", web.public_url, web.host, sock.getsockname()[1])
    task = asyncio.create_task(server.serve(sockets=[sock]))
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    except SystemExit:  # pragma: no cover - uvicorn exits when it cannot bind
        pass
    if task.done():
        if not stop.is_set():
            log.error("the web server stopped (is %s:%d already in use?); the daemon goes on without it",
                      web.host, web.port)
    else:
        server.should_exit = True
        await task
    stopper.cancel()
