"""A small floor as the clock runs, for the pages' browser tests: a site where it is about
noon now (so that the last hours are all of today's production day, whenever the tests run),
planned around the clock.

Press A has moulded (job J-100, mould m1, whose cushion drops for ten cycles near the end)
for the last three hours but one, when its check ring broke (an alert
warned 10 h before, and closed when it broke); it has an open alert on its hydraulic pump
now; its nozzle temperature is in the telemetry. Press B has waited, and is setting up
since 30 minutes ago.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from performance import Floor as Machine
from performance import every
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from plant import parse_plant
from store.plant import write_plant

EVIDENCE = [{"feature": "p95:HydraulicPressure|dev8h", "value": 3.1, "baseline": 1.0,
             "text": "hydraulic pressure ripple 3.1x its baseline"}]  # fmt: skip


def noon_plant(site: str, now: datetime) -> str:
    offset = 12 - now.hour  # UTC-11 .. UTC+12
    zone = "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"
    return f"""
sites:
  - id: {site}
    name: The living lab
    timezone: {zone}
    calendar:
      shifts: [{{name: early, start: "00:00", end: "12:00"}},
               {{name: late, start: "12:00", end: "00:00"}}]
moulds:
  - id: m1
    cavities: 2
    ideal_cycle_s: 55.0
    part_weight_g: 12.0
    material: PP
    limits:
      CushionStroke: {{lower: 4.5, upper: 5.5, target: 5.0}}
"""


async def seed_lab(db: AsyncConnection[Any], site: str) -> tuple[Machine, Machine]:
    now = datetime.now(UTC).replace(microsecond=0)
    start, broke, fixed = (now - timedelta(hours=h) for h in (3, 2, 1))
    await write_plant(db, parse_plant(noon_plant(site, now)), now - timedelta(days=30), "test")
    a, b = await Machine.machine(db, site), await Machine.machine(db, site)
    await a.states([(start, "running", None), (broke, "fault", "check_ring_failure"),
                    (fixed, "running", None)])  # fmt: skip
    shots = every(start, broke, 60, 60) + every(fixed, now, 60, 60)
    await a.job(start - timedelta(minutes=5), "J-100", "m1", 2)
    # Its cushion: steady around 5 mm, then ten cycles far below (a leaking check ring).
    cushion = [{"CushionStroke": 5.0 + 0.05 * ((i * 7) % 5 - 2)} for i in range(len(shots))]
    for i in range(len(shots) - 40, len(shots) - 30):
        cushion[i]["CushionStroke"] = 3.5
    await a.cycles(shots[10:], parts=2, job="J-100", cycle_s=60, kwh=0.12, values=cushion[10:])
    await a.cycles(shots[:10], parts=2, job="J-100", cycle_s=60, kwh=0.12, quality="bad",
                   defect="short_shot", values=cushion[:10])  # fmt: skip
    setup = now - timedelta(minutes=30)
    await b.states([(start, "idle", None), (setup, "setup", "mould_change")])
    alert = (
        "INSERT INTO pdm_alert (machine_id, component, opened_at, status, closed_at,"
        " close_reason, last_alarm_at, p_8h, p_24h, rul_h, evidence, model)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, 0.7, 0.9, 9.5, %s, 'm')"
    )
    await db.execute(alert, (a.id, "check_ring", broke - timedelta(hours=10), "closed", broke,
                             "failed", broke, Jsonb([])))  # fmt: skip
    await db.execute(alert, (a.id, "hydraulic_pump", now - timedelta(minutes=20), "open", None,
                             None, now, Jsonb(EVIDENCE)))  # fmt: skip
    await db.execute(
        "INSERT INTO pdm_prediction_latest (machine_id, component, time, p_8h, p_24h, rul_h,"
        " rul_low_h, rul_high_h, alarm, evidence, model)"
        " VALUES (%s, 'hydraulic_pump', %s, 0.7, 0.9, 9.5, 4.0, 20.0, true, %s, 'm')",
        (a.id, now, Jsonb(EVIDENCE)),
    )
    # Its nozzle temperature, every 10 s over the last two hours.
    await db.execute(
        "INSERT INTO signal (name, unit) VALUES ('TempNozzle', 'degC') ON CONFLICT DO NOTHING"
    )
    await db.execute(
        "INSERT INTO telemetry (time, machine_id, signal_id, value)"
        " SELECT t, %(m)s, s.id, 230 + 2 * sin(extract(epoch FROM t) / 600)"
        " FROM signal s, generate_series(%(a)s::timestamptz, %(b)s, interval '10 s') t"
        " WHERE s.name = 'TempNozzle'",
        {"m": a.id, "a": now - timedelta(hours=2), "b": now},
    )
    await db.execute(
        "INSERT INTO latest_value (machine_id, signal_id, time, value)"
        " SELECT %s, id, %s, 230 FROM signal WHERE name = 'TempNozzle'",
        (a.id, now),
    )
    return a, b
