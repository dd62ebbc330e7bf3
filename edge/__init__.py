"""The edge gateway: polls Modbus TCP machines and publishes contracts messages over MQTT.

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
from edge.modbus import ModbusPoller, Snapshot

__all__ = [
    "BrokerConfig",
    "ConfigError",
    "DeviceError",
    "EdgeError",
    "GatewayConfig",
    "MachineConfig",
    "ModbusConfig",
    "ModbusPoller",
    "Snapshot",
    "load_config",
    "load_register_map",
    "run_edge",
]
