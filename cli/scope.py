"""What a report or evidence pack covers: which organisations, and which days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

# Which organisation each vendor tenant belongs to (every tenant is in 'default' unless the
# organisations file says otherwise).
ORGANISATION_TENANTS = """
    select distinct organisation, source, tenant from marts.fct_daily_posture
"""


@dataclass(frozen=True)
class Period:
    """The days covered, both ends included."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise ValueError(f"--from {self.start} is after --to {self.end}")


def organisations(con: Any, organisation: str | None) -> list[str]:
    """Every organisation in the published warehouse, or only `organisation` (which must exist)."""
    rows = con.execute(f"select distinct organisation from ({ORGANISATION_TENANTS}) order by 1")
    names = [row[0] for row in rows.fetchall()]
    if organisation is None:
        return names
    if organisation not in names:
        known = ", ".join(names) or "none loaded yet"
        raise ValueError(f"no organisation {organisation!r} in the warehouse (known: {known})")
    return [organisation]
