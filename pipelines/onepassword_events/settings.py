"""1Password Events API: endpoints, limits, and the typed columns of each events table.

Each table's columns come from a documented item field: `(column, path into the item, dlt type)`.
Nested objects are flattened (`client.ip_address` → `client_ip_address`); `*_details` objects
lose the suffix (`actor_details.email` → `actor_email`). Every table also has `tenant`,
`event_date` (UTC day of `timestamp`), `observed_at` (the vendor's clock when the page was
served), `raw` (the whole item as JSON text) and `_dlt_load_id`.
"""

from datetime import timedelta

VENDOR = "1Password Events"
SECRET_HINT = "SOURCES__ONEPASSWORD_EVENTS__TOKEN"

INTROSPECT = "/api/v2/auth/introspect"
# table → (token feature, endpoint)
TABLES = {
    "signin_attempts": ("signinattempts", "/api/v2/signinattempts"),
    "item_usages": ("itemusages", "/api/v2/itemusages"),
    "audit_events": ("auditevents", "/api/v2/auditevents"),
}

RETENTION = timedelta(days=120)  # the vendor keeps events this long: the default first start
DEFAULT_PAGE_LIMIT = 1000
MAX_PAGE_LIMIT = 1000
BATCH_ROWS = 10_000  # pages are passed to dlt as Arrow tables of about this many rows
# Events one run loads at most, the three types together: a backfill takes several runs, each
# committed on its own. Peak memory grows with it (the run's uuids are held to load each event
# once), and so does speed (each run pays dlt's fixed costs once).
MAX_EVENTS_PER_LOAD = 250_000
# Empty pages in a row, each saying has_more with a new cursor, after which an endpoint's pages
# are taken to be endless and the run fails (real pages reach events, or their end, long before).
MAX_EMPTY_PAGES = 100
# Seconds waited before asking again for a page made only of events the run has already read
# (a stale cache in front of the vendor); once they are used up the run fails.
REPEATED_PAGE_WAITS = (0.5, 1.0, 2.0)
# (requests, window seconds): 1Password's published limits, kept by one limiter per token for
# every run in the process.
RATE_LIMITS: tuple[tuple[int, float], ...] = ((600, 60.0), (30_000, 3_600.0))

# An event fetched again by a later run (an overlap after a crash) replaces the stored row. Within
# one run the resource drops repeats itself, so dlt can skip its costly dedup of the staging data.
EVENT_DISPOSITION = {"disposition": "merge", "strategy": "delete-insert", "deduplicated": True}
# Keyed by tenant too: two accounts' events never replace each other, even with equal uuids.
PRIMARY_KEY = ("tenant", "uuid")

_CLIENT = tuple(
    (f"client_{key}", f"client.{key}", "text")
    for key in (
        "app_name",
        "app_version",
        "platform_name",
        "platform_version",
        "os_name",
        "os_version",
        "ip_address",
    )
)
_LOCATION = (
    ("location_country", "location.country", "text"),
    ("location_region", "location.region", "text"),
    ("location_city", "location.city", "text"),
    ("location_latitude", "location.latitude", "double"),
    ("location_longitude", "location.longitude", "double"),
)


def _person(column_prefix: str, path: str) -> tuple[tuple[str, str, str], ...]:
    return tuple(
        (f"{column_prefix}_{key}", f"{path}.{key}", "text") for key in ("uuid", "name", "email")
    )


FIELDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "signin_attempts": (
        ("uuid", "uuid", "text"),
        ("timestamp", "timestamp", "timestamp"),
        ("session_uuid", "session_uuid", "text"),
        ("category", "category", "text"),
        ("type", "type", "text"),
        ("country", "country", "text"),
        ("details_value", "details.value", "text"),
        *_person("target_user", "target_user"),
        *_CLIENT,
        *_LOCATION,
    ),
    "item_usages": (
        ("uuid", "uuid", "text"),
        ("timestamp", "timestamp", "timestamp"),
        ("used_version", "used_version", "bigint"),
        ("vault_uuid", "vault_uuid", "text"),
        ("item_uuid", "item_uuid", "text"),
        ("action", "action", "text"),
        *_person("user", "user"),
        *_CLIENT,
        *_LOCATION,
    ),
    "audit_events": (
        ("uuid", "uuid", "text"),
        ("timestamp", "timestamp", "timestamp"),
        ("actor_uuid", "actor_uuid", "text"),
        ("actor_name", "actor_details.name", "text"),
        ("actor_email", "actor_details.email", "text"),
        ("action", "action", "text"),
        ("object_type", "object_type", "text"),
        ("object_uuid", "object_uuid", "text"),
        ("object_name", "object_details.name", "text"),
        ("object_email", "object_details.email", "text"),
        ("aux_id", "aux_id", "bigint"),
        ("aux_uuid", "aux_uuid", "text"),
        ("aux_name", "aux_details.name", "text"),
        ("aux_email", "aux_details.email", "text"),
        ("aux_info", "aux_info", "text"),
        ("session_uuid", "session.uuid", "text"),
        ("session_login_time", "session.login_time", "timestamp"),
        ("session_device_uuid", "session.device_uuid", "text"),
        ("session_ip", "session.ip", "text"),
        *_LOCATION,
    ),
}
# Columns the source adds to every row.
ADDED_FIELDS = (
    ("tenant", "text"),
    ("event_date", "date"),
    ("observed_at", "timestamp"),
    ("raw", "text"),
)
REQUIRED = ("uuid", "timestamp", "tenant", "event_date", "observed_at", "raw")


def table_columns(table: str) -> dict[str, dict[str, object]]:
    """dlt column hints of `table`: every contract column typed, the required ones not null."""
    names = [(column, kind) for column, _, kind in FIELDS[table]] + list(ADDED_FIELDS)
    return {
        column: {"data_type": kind, "nullable": column not in REQUIRED} for column, kind in names
    }
