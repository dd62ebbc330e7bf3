"""The edge gateway: polls Modbus TCP machines (or forwards MQTT-native ones) to the plant broker.

Every message goes to a durable SQLite outbox first and leaves it when the broker has it.

Exceptions::

    EdgeError
    ├── ConfigError     a gateway config or register map that cannot be read or is not valid
    └── DeviceError     a machine that did not answer a poll, or answered with an error
"""

from edge.agent import run_edge
from edge.config import (
    BrokerConfig,
    GatewayConfig,
    MachineConfig,
    ModbusConfig,
    load_config,
    load_register_map,
)
from edge.errors import ConfigError, DeviceError, EdgeError
from edge.modbus import CycleSeen, ModbusPoller, Snapshot
from edge.mqtt_source import MqttSource
from edge.outbox import Outbox

__all__ = [
    "BrokerConfig",
    "ConfigError",
    "CycleSeen",
    "DeviceError",
    "EdgeError",
    "GatewayConfig",
    "MachineConfig",
    "ModbusConfig",
    "ModbusPoller",
    "MqttSource",
    "Outbox",
    "Snapshot",
    "load_config",
    "load_register_map",
    "run_edge",
]
