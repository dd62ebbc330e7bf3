"""The bodies of the API's error answers, one model each, shared by every router."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Problem(BaseModel):
    detail: str = Field(description="what went wrong")


class Unprocessable(BaseModel):
    detail: str | list[dict[str, Any]] = Field(
        description="what is wrong with the request: a sentence (a bad range, a level above "
        "the place, figures that cannot be computed from the data), or a list, one entry per "
        "invalid parameter"
    )


UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "model": Problem,
        "description": "the database is down, not migrated, or did not answer in time",
    }
}
