"""The demo's floor as processes: MQTT-native machines, and one retrofitted line read by an edge.

A plant that digitises keeps its older presses: they answer Modbus TCP only, and a gateway
(a Raspberry Pi on the shop floor) polls them and forwards their data over MQTT, through an
outbox that survives outages. The demo shows both: the machines of `RETROFIT_LINE` are served
as Modbus TCP servers by one `moldlab sim --modbus-port` process and read by a `moldlab edge`
gateway whose config and SQLite outbox live in the data directory; the other lines' machines
publish over MQTT themselves from another `moldlab sim` process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from moldlab.servers import ServerError
from moldlab.servers.process import free_ports
from simulators.specs import MachineSpec

# The demo's line of older presses: Modbus TCP only, read by an edge gateway.
RETROFIT_LINE = "line-1"
_MAX_NAMED = 6  # machine ids named in one log line; more are counted
# A sim seeds its machines by their place in its own list: two sims with one seed would give
# their first machines the same random stream (the same stops at the same moments).
_SEEDS = {"sim-mqtt": "1", "sim-modbus": "2"}


@dataclass(frozen=True)
class FloorPart:
    """One child process of the floor: its name, `moldlab` arguments and what it does."""

    name: str
    args: list[str]
    role: str  # for the log line that announces it
    gateway: str = ""  # of an edge gateway: its place, "site/area/line/id" (edge_status.edge_key)


def _floor(machines: int | None) -> tuple[list[str], list[MachineSpec]]:
    """The `moldlab sim` options choosing the floor, and its machines in order."""
    if machines:
        from simulators import demo_floor

        return ["--machines", str(machines)], demo_floor(machines)
    from simulators.scenario import load_scenario

    return ["--scenario", "demo"], load_scenario("demo").machines


def _ids(specs: list[MachineSpec]) -> str:
    ids = [spec.machine_id for spec in specs]
    more = f" and {len(ids) - _MAX_NAMED} more" if len(ids) > _MAX_NAMED else ""
    return ", ".join(ids[:_MAX_NAMED]) + more


def floor_parts(machines: int | None, edge_dir: Path, broker_url: str) -> list[FloorPart]:
    """The floor's processes: MQTT-native machines, Modbus machines, and their edge gateway.

    Writes the gateway's config into `edge_dir` (again at each start: the Modbus ports are
    chosen anew); its outbox stays there across restarts.
    """
    floor, specs = _floor(machines)
    native = [spec for spec in specs if spec.line != RETROFIT_LINE]
    modbus = [spec for spec in specs if spec.line == RETROFIT_LINE]
    parts = []
    if native:
        lines = sorted({spec.line for spec in native})
        only = [arg for line in lines for arg in ("--line", line)]
        role = f"{_ids(native)} ({', '.join(lines)}): MQTT-native, publishing to the broker"
        args = ["sim", *floor, *only, "--seed", _SEEDS["sim-mqtt"]]
        parts.append(FloorPart("sim-mqtt", args, role))
    if modbus:
        # The sim serves the chosen machines in the floor's order on base, base+1, ...
        base = free_ports(len(modbus))
        args = ["sim", *floor, "--line", RETROFIT_LINE, "--seed", _SEEDS["sim-modbus"]]
        args += ["--modbus-port", str(base)]
        ports = f"127.0.0.1:{base}-{base + len(modbus) - 1}"
        role = f"{_ids(modbus)} ({RETROFIT_LINE}): Modbus TCP only, on {ports}"
        parts.append(FloorPart("sim-modbus", args, role))
        gateway, config = _gateway_config(modbus, base, edge_dir, broker_url)
        role = (
            f"gateway {gateway.rsplit('/', 1)[1]} reads {_ids(modbus)} over Modbus TCP, "
            f"forwards over MQTT through its outbox; config {config}"
        )
        parts.append(FloorPart("edge", ["edge", "--config", str(config)], role, gateway))
    return parts


def _gateway_config(
    specs: list[MachineSpec], base_port: int, edge_dir: Path, broker_url: str
) -> tuple[str, Path]:
    """Write the gateway's YAML (see deploy/edge/gateway.example.yaml); its place and path."""
    places = {(spec.site, spec.area, spec.line) for spec in specs}
    if len(places) != 1:  # a gateway serves one place of the namespace
        raise ServerError(f"the machines of {RETROFIT_LINE} are in several areas: {places}")
    site, area, line = places.pop()
    gateway_id = f"edge-{line}"
    config = {
        "gateway_id": gateway_id,
        "site": site,
        "area": area,
        "line": line,
        "broker": {"url": broker_url},
        "outbox": {"path": str(edge_dir / "outbox.sqlite")},
        "metrics": {"port": 0},  # a free port; the gateway logs which
        "machines": [
            {
                "machine_id": spec.machine_id,
                "modbus": {
                    "host": "127.0.0.1",
                    "port": base_port + i,
                    "poll_intervals_s": {"status": 0.5},  # a cycle record per shot
                },
            }
            for i, spec in enumerate(specs)
        ],
    }
    edge_dir.mkdir(parents=True, exist_ok=True)
    path = edge_dir / "gateway.yaml"
    header = (
        "# Written by `moldlab demo` at each start (the Modbus ports change): the gateway\n"
        "# reading the retrofitted line. Format: deploy/edge/gateway.example.yaml\n"
    )
    path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    from edge import EdgeError, load_config

    try:
        load_config(path)  # here, so that a bad config stops the demo before any child
    except EdgeError as exc:
        raise ServerError(f"the demo's gateway config is not valid: {exc}") from exc
    return f"{site}/{area}/{line}/{gateway_id}", path
