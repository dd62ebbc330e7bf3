"""A machine's job and mould history: the job messages it sent (EUROMAP 77), newest first."""

from __future__ import annotations

from datetime import datetime

from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from analytics.errors import NotFound
from contracts import Place


class JobChange(BaseModel):
    time: datetime = Field(description="when the machine reported it (UTC)")
    job_name: str = Field(description="the job (EUROMAP 77 JobName)")
    mould: str = Field(description="the mould mounted (MouldId)")
    status: str = Field(
        description="set_up_active, start_up_active, job_in_production, job_finished, ..."
    )
    active_cavities: int = Field(description="cavities moulding")
    nominal_parts: int = Field(description="the order's parts")
    material: str | None = Field(description="the material, when the machine said")


_JOBS = """
SELECT j.time, j.job_name, j.mould_id, j.job_status, j.active_cavities, j.nominal_parts,
       j.material
FROM machine_job j
WHERE j.machine_id = %(machine)s AND j.time >= %(start)s AND j.time < %(end)s
ORDER BY j.time DESC, j.seq DESC
LIMIT %(limit)s
"""


async def job_history(
    conn: AsyncConnection, machine: Place, start: datetime, end: datetime, limit: int
) -> tuple[list[JobChange], bool]:
    """The machine's job messages in [start, end), newest first, at most `limit`; and
    whether there were more. Raises NotFound for an unknown machine."""
    cur = await conn.execute("SELECT id FROM machine WHERE place = %s", (str(machine),))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no machine {machine}")
    cur = await conn.execute(
        _JOBS, {"machine": row[0], "start": start, "end": end, "limit": limit + 1}
    )
    rows = await cur.fetchall()
    jobs = [
        JobChange(time=t, job_name=name, mould=mould, status=status, active_cavities=cavities,
                  nominal_parts=parts, material=material)
        for t, name, mould, status, cavities, parts, material in rows[:limit]
    ]  # fmt: skip
    return jobs, len(rows) > limit
