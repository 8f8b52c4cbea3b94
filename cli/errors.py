"""Turn what went wrong into one line a person can act on."""

from __future__ import annotations

from pipelines.registry import SOURCES


def describe(exc: BaseException) -> tuple[str, int]:
    """(message, exit code) for an exception raised by a command."""
    from pipelines.failures import causes, describe_failure
    from pipelines.vendor_http import find_vendor_error
    from warehouse.writer import WarehouseBusyError

    if find_vendor_error(exc) is None:
        missing = _missing_config(exc)
        if missing:
            return f"missing configuration: {missing} (environment or .dlt/secrets.toml)", 2
        if isinstance(exc, WarehouseBusyError):
            return str(exc), 1
        if isinstance(exc, (FileNotFoundError, ValueError)):
            return str(exc), 2
        if any(
            "Could not set lock on file" in str(c) or "Conflicting lock" in str(c)
            for c in causes(exc)
        ):
            return "the warehouse file is in use by another load or transform; try again", 1
    return describe_failure(exc), 1


def _missing_config(exc: BaseException) -> str:
    from dlt.common.configuration.exceptions import ConfigFieldMissingException

    while exc is not None and not isinstance(exc, ConfigFieldMissingException):
        exc = exc.__cause__ or exc.__context__
    if exc is None:
        return ""
    prefixes = [spec.env_prefix for spec in SOURCES.values()]
    section = next(
        (p for p in prefixes if p.split("__")[1].replace("_", "").lower() in exc.spec_name.lower()),
        None,
    )
    fields = sorted(exc.fields)
    if section is None:
        return ", ".join(fields)
    return ", ".join(f"{section}{field.upper()}" for field in fields)
