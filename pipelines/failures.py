"""A failed load in one line: which vendor, which step or endpoint, and the cause.

dlt wraps what went wrong (a step failure around a resource failure around the real error, or a
load job's failure message) and puts the cause on later lines; the CLI and Dagster show this
line instead, so both say the same."""

from __future__ import annotations

from collections.abc import Iterator

from pipelines.registry import SOURCES
from pipelines.vendor_http import find_vendor_error


def causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it wraps, outermost first (dlt's `exception` and `client_exception`
    attributes, then Python's cause and context)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        wrapped = getattr(current, "exception", None) or getattr(current, "client_exception", None)
        if not isinstance(wrapped, BaseException):
            wrapped = current.__cause__ or current.__context__
        current = wrapped


def describe_failure(exc: BaseException) -> str:
    """One line for a failed load (or any step): a vendor's own error as it is, else the
    source's vendor, the step (and resource or load job) that failed and the innermost cause."""
    vendor_error = find_vendor_error(exc)
    if vendor_error is not None:
        return _first_line(vendor_error)
    chain = list(causes(exc))
    where = []
    for link in chain:
        pipeline = getattr(getattr(link, "pipeline", None), "pipeline_name", None)
        if pipeline and (step := getattr(link, "step", None)):
            spec = next((s for s in SOURCES.values() if s.pipeline_name == pipeline), None)
            where.append(f"{spec.vendor if spec else pipeline}: {step} step failed")
        if resource := getattr(link, "resource_name", None) or getattr(link, "pipe_name", None):
            where.append(f"in resource {resource}")
        if job := getattr(link, "job_id", None):
            where.append(f"in load job {job}")
    root = chain[-1]
    cause = f"{type(root).__name__}: {_first_line(root)}"
    return f"{' '.join(dict.fromkeys(where))}: {cause}" if where else cause


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else "(no message)"
