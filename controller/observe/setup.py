"""Wiring of the timeline and the HTTP admin server into a controller node."""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.observe.http_admin import AdminHttpServer
from controller.observe.timeline import Timeline
from controller.observe.views import Observed

if TYPE_CHECKING:
    from controller.node.server import ControllerNode
    from controller.service.broker_controller import BrokerController
    from controller.service.zk_service import ZkService


def install_observability(
    node: ControllerNode, service: ZkService, brokers: BrokerController
) -> AdminHttpServer | None:
    """Register the timeline as a listener after the broker controller (it reads the image
    the broker controller just produced) and, unless `admin_port` is -1, the admin server as
    a component. Its URL is then in `node.status()["admin"]`."""
    timeline = Timeline(brokers)
    node.listeners.append(timeline)
    if node.config.admin_port < 0:
        return None
    server = AdminHttpServer(Observed(node, service, brokers, timeline), node.config.admin_port)
    node.components.append(server.run)
    node.status_sources["admin"] = server.status
    return server
