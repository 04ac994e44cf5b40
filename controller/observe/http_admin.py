"""The HTTP admin server of one controller (ZooKeeper's AdminServer convention, on
`admin_port`): hypercorn's trio worker serving a starlette app, as a component in the node's
nursery (cancelled with it).

Routes: `/` console, `/metrics`, `/commands` and `/commands/<name>`, `/healthz`, `/readyz`,
`/api/state` (the console's data), `/api/events` (the timeline as server-sent events).
Every handler is `async` and so runs on the node's trio thread: reading node state needs no
locks, and each request's work is a bounded read of in-memory state.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from functools import partial
from importlib.resources import files
from typing import Any, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import Framework
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from controller.observe.metrics import make_registry, render
from controller.observe.views import Observed

log = logging.getLogger(__name__)

CONTENT_TYPE_METRICS = "text/plain; version=0.0.4; charset=utf-8"
SSE_KEEPALIVE_S = 15.0
CONSOLE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}


def _console_file(name: str) -> bytes:
    return files("controller.observe").joinpath("console", name).read_bytes()


def make_app(observed: Observed) -> Starlette:
    registry = make_registry(observed)

    async def metrics(request: Request) -> Response:
        await observed.refresh()
        return Response(render(registry), media_type=CONTENT_TYPE_METRICS)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "node_id": observed.node.node_id})

    async def readyz(request: Request) -> Response:
        ready, details = observed.readiness()
        return JSONResponse(details, status_code=200 if ready else 503)

    async def command_list(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {name: f"{base}/commands/{name}" for name in sorted(observed.commands())}
        )

    async def command(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "topics":
            return Response(await observed.topics_json(), media_type="application/json")
        await observed.refresh()
        result = observed.command(name)
        if result is None:
            return JSONResponse(
                {"command": name, "error": f"Unknown command: {name}"}, status_code=404
            )
        return JSONResponse(result)

    async def state(request: Request) -> Response:
        await observed.refresh()
        return JSONResponse(await observed.console_state())

    async def events(request: Request) -> Response:
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            after = 0
        last_id = request.headers.get("last-event-id", "")
        if last_id.isdigit():
            after = int(last_id)
        return StreamingResponse(
            _event_stream(observed, after),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def console(request: Request) -> Response:
        name = request.path_params.get("name", "index.html")
        media = CONSOLE_FILES.get(name)
        if media is None:
            return Response("not found\n", status_code=404, media_type="text/plain")
        return Response(_console_file(name), media_type=media)

    routes = [
        Route("/", console),
        Route("/console/{name}", console),
        Route("/metrics", metrics),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/commands", command_list),
        Route("/commands/{name}", command),
        Route("/api/state", state),
        Route("/api/events", events),
    ]
    return Starlette(routes=routes)


async def _event_stream(observed: Observed, after: int) -> AsyncIterator[str]:
    """Timeline events with `seq > after` as SSE, then each new one as it happens."""
    timeline = observed.timeline
    seq = after
    yield f"retry: 1000\nevent: hello\ndata: {json.dumps({'node_id': observed.node.node_id})}\n\n"
    while True:
        changed = timeline.changed
        for event in timeline.since(seq):
            seq = event["seq"]
            yield f"id: {seq}\ndata: {json.dumps(event)}\n\n"
        with trio.move_on_after(SSE_KEEPALIVE_S) as scope:
            await changed.wait()
        if scope.cancelled_caught:
            yield ": keep-alive\n\n"


class AdminHttpServer:
    """Serves `make_app(observed)` on `port` (0: any free port) for the node's lifetime."""

    def __init__(self, observed: Observed, port: int, host: str = "0.0.0.0") -> None:
        self.observed = observed
        self.host = host
        self.port = port
        self.advertised_host = observed.node.config.client_host
        self.url = ""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        config = Config()
        config.bind = [f"{self.host}:{self.port}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        config.graceful_timeout = 1.0
        config.keep_alive_timeout = 30.0
        app = cast(Framework, make_app(self.observed))
        try:
            async with trio.open_nursery() as nursery:
                binds: list[str] = await nursery.start(partial(serve, app, config, mode="asgi"))
                self.port = int(binds[0].rsplit(":", 1)[1])
                self.url = f"http://{self.advertised_host}:{self.port}/"
                self.observed.admin_url = self.url
                log.info("admin server on %s", self.url)
                task_status.started()
        except* OSError as group:  # say which port: run_controller prints this one line
            leaf = group.exceptions[0]
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            assert isinstance(leaf, OSError)
            raise OSError(leaf.errno, f"admin port {self.port}: {leaf.strerror or leaf}") from None

    def status(self) -> dict[str, Any]:
        return {"url": self.url, "port": self.port}
