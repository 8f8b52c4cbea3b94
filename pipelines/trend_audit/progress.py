"""What one read of the audit log has met, and whether the rest of the log is loaded already.

The vendor documents no order, no time filter and no sort, so a read may stop before the last
page only on evidence: it has shown itself newest first, it has met every tenant the API key's
last complete read met, no tenant is new, and a whole page is older than every known tenant's
high-water mark (its newest loaded event) less a lookback window. Times ahead of the vendor's
own clock (`Date`) are stored but never trusted: a bad event or a vendor clock must not move a
high-water mark past what was really read.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from .helpers import parse_time
from .settings import LOGS, VENDOR

logger = logging.getLogger(__name__)


class ReadProgress:
    """The progress of one read of the log (possibly continued over several runs).

    Args:
        high_water_marks: tenant -> newest event loaded by earlier, complete reads.
        expected_tenants: tenants the read must meet before it may stop early.
        lookback: events this much older than a high-water mark are still looked for.
        resume: `resume_state()` of the run this one continues, if any.
    """

    def __init__(
        self,
        high_water_marks: dict[str, datetime],
        expected_tenants: set[str],
        lookback: timedelta,
        resume: dict[str, Any] | None = None,
    ) -> None:
        self.high_water_marks = dict(high_water_marks)
        self.expected_tenants = expected_tenants
        self.lookback = lookback
        resume = resume or {}
        self.order = OrderWatch.from_resume_state(resume.get("order", {}))
        # tenant -> newest trusted time this read has met
        self.newest = {t: parse_time(v) for t, v in resume.get("newest", {}).items()}
        self.new_tenant = bool(resume.get("new_tenant", False))
        self.pages_read = int(resume.get("pages", 0))
        self.events_read = int(resume.get("events", 0))
        self.pages_this_run = 0
        self.events_this_run = 0
        self.cutoff: datetime | None = None  # set at the run's first page (`_set_cutoff`)
        self.rest_is_loaded = False
        self.stop_reason = "stopped at the last page (no `next`)"

    def resume_state(self) -> dict[str, Any]:
        """What the read has met, as JSON-able state for the run that continues it."""
        return {
            "order": self.order.resume_state(),
            "newest": {t: moment.isoformat() for t, moment in self.newest.items()},
            "new_tenant": self.new_tenant,
            "pages": self.pages_read,
            "events": self.events_read,
        }

    def observe_page(self, events: list[tuple[str, str, datetime]], observed_at: datetime) -> None:
        """Take in one page's (tenant, id, time) triples, served at `observed_at` by the vendor's
        clock; sets `rest_is_loaded` once the pages still to come hold nothing new."""
        if self.pages_this_run == 0:
            self._set_cutoff(observed_at)
        self.pages_this_run += 1
        self.pages_read += 1
        self.events_read += len(events)
        self.events_this_run += len(events)
        trusted = [event for event in events if event[2] <= observed_at]
        if len(trusted) < len(events):
            logger.warning(
                "%s: %s served %d events timed after its own clock (%s); stored, but not "
                "trusted to say what is loaded",
                VENDOR,
                LOGS,
                len(events) - len(trusted),
                observed_at.isoformat(),
            )
        self.order.observe([(event_id, moment) for _, event_id, moment in trusted])
        for tenant, _, moment in trusted:
            if tenant not in self.high_water_marks:
                self.new_tenant = True
            if tenant not in self.newest or self.newest[tenant] < moment:
                self.newest[tenant] = moment
        if (
            trusted
            and self.cutoff is not None
            and not self.new_tenant
            # a tenant not met yet may still have new events further on (e.g. events grouped
            # by account, each group newest first)
            and self.newest.keys() >= self.expected_tenants
            and self.order.newest_first
            and max(moment for _, _, moment in trusted) < self.cutoff
        ):
            self.rest_is_loaded = True
            self.stop_reason = (
                f"stopped at page {self.pages_read}: newest first and older than {self.cutoff}"
            )

    def _set_cutoff(self, observed_at: datetime) -> None:
        """Every event older than the cutoff was visible to an earlier, complete read. A mark
        ahead of the vendor's clock (left by a bad event before such times were distrusted)
        says nothing: its tenant counts as new, so this read goes to the last page."""
        ahead = {t for t, mark in self.high_water_marks.items() if mark > observed_at}
        for tenant in ahead:
            logger.warning(
                "%s: the high-water mark of tenant %s (%s) is ahead of the vendor's clock; "
                "reading the whole log to replace it",
                VENDOR,
                tenant,
                self.high_water_marks.pop(tenant).isoformat(),
            )
        known = self.high_water_marks.values()
        self.cutoff = min(known) - self.lookback if known else None

    def updated_marks(self) -> dict[str, datetime]:
        """The marks to store once this read has reached its end: each tenant met gets its
        newest trusted time, unless its trusted mark is newer (a mark ahead of the vendor's
        clock was dropped at the first page, so it is replaced)."""
        known = self.high_water_marks
        return {t: n for t, n in self.newest.items() if t not in known or known[t] < n}


class OrderWatch:
    """Whether a read has shown itself newest first: time never rose from one log to the next,
    and fell at least once. Logs repeated from the previous page (a page boundary that shifted
    because new events arrived during the read) are left out of the comparison."""

    def __init__(self) -> None:
        self._last: datetime | None = None
        self._fell = False
        self._rose = False
        self._previous_ids: set[str] = set()

    @classmethod
    def from_resume_state(cls, state: dict[str, Any]) -> OrderWatch:
        """A watch going on from `resume_state()` of an earlier run (empty: a new read)."""
        watch = cls()
        watch._last = parse_time(state["last"]) if state.get("last") else None
        watch._fell = bool(state.get("fell", False))
        watch._rose = bool(state.get("rose", False))
        watch._previous_ids = set(state.get("previous_ids", ()))
        return watch

    def resume_state(self) -> dict[str, Any]:
        """What the watch has seen, as JSON-able state."""
        return {
            "last": self._last.isoformat() if self._last else None,
            "fell": self._fell,
            "rose": self._rose,
            "previous_ids": sorted(self._previous_ids),
        }

    def observe(self, page: list[tuple[str, datetime]]) -> None:
        """Take in one page's (id, time) pairs, in the order served."""
        for event_id, moment in page:
            if event_id in self._previous_ids:
                continue
            if self._last is not None:
                if moment > self._last:
                    self._rose = True
                elif moment < self._last:
                    self._fell = True
            self._last = moment
        self._previous_ids = {event_id for event_id, _ in page}

    @property
    def newest_first(self) -> bool:
        """True once the read has been seen to go back in time and never forward."""
        return self._fell and not self._rose
