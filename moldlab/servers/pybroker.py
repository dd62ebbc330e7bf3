"""Run the amqtt broker on 127.0.0.1: `python -m moldlab.servers.pybroker --port N`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin

from moldlab.servers.mqtt import PYBROKER_READY

log = logging.getLogger("moldlab.servers.pybroker")


class OpenAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Let every client in without marking its session anonymous."""

    # amqtt's AnonymousAuthPlugin flags sessions as anonymous, and the broker then drops
    # their persistent sessions and queued QoS 1 messages on disconnect.
    async def authenticate(self, *, session: Any) -> bool:
        return True


def broker_config(port: int) -> dict[str, Any]:
    """Return the amqtt config: one TCP listener, anyone may connect, no $SYS topics."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {f"{__name__}.OpenAuthPlugin": {}},
    }


async def serve(port: int) -> None:
    """Run the broker until SIGTERM or SIGINT."""
    broker = Broker(broker_config(port))
    await broker.start()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    log.info("%s on mqtt://127.0.0.1:%d", PYBROKER_READY.decode(), port)
    await stopping.wait()
    await broker.shutdown()
    log.info("amqtt broker stopped")


def main() -> None:
    """Parse arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # amqtt logs every connect and packet at INFO.
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
