"""Keeper RMD Admin REST API: endpoints, the columns every snapshot row carries, and table hints."""

VENDOR = "Keeper RMD"
SECRET_HINT = "SOURCES__KEEPER_RMD__API_TOKEN"

STAT = "/api/rest/rmd/get_enterprise_stat"
STAT_DETAILS = "/api/rest/rmd/get_enterprise_stat_details"
ALERTS_SUMMARY = "/api/rest/rmd/get_security_alerts_summary"
ALERTS_DETAIL = "/api/rest/rmd/get_security_alerts_detail"
BENCHMARKS = "/api/rest/rmd/get_security_benchmarks"
SET_BENCHMARKS = "/api/rest/rmd/set_security_benchmarks"

# Empty pages in a row, each with `has_more`, after which the pagination fails instead of going
# on: a vendor may page past filtered-out rows, but not without end.
MAX_EMPTY_PAGES = 10

# A snapshot re-taken on the same day replaces that day's rows for that tenant, and only those.
SNAPSHOT_DISPOSITION = {"disposition": "merge", "strategy": "delete-insert"}
SNAPSHOT_KEY = ("tenant", "snapshot_date")

# Declared so the tables have every contract column from the first load on, even when the
# vendor leaves an optional field out of a whole response.
SNAPSHOT_COLUMNS = {
    "tenant": {"data_type": "text", "nullable": False},
    "snapshot_date": {"data_type": "date", "nullable": False},
    "observed_at": {"data_type": "timestamp", "nullable": False},
}
ALERT_COLUMNS = {
    "event": {"data_type": "text"},
    "event_occurrences": {"data_type": "bigint"},
    "unique_users": {"data_type": "bigint"},
    "last_events": {"data_type": "bigint"},
    "last_users": {"data_type": "bigint"},
}
TABLE_COLUMNS = {
    "enterprise_stat": {
        "users_has_records": {"data_type": "bigint"},
        "users_logged_recent": {"data_type": "bigint"},
    },
    "enterprise_stat_details": {
        "enterprise_user_id": {"data_type": "text", "nullable": False},
        "last_logged_in": {"data_type": "timestamp"},
        "has_records": {"data_type": "bool"},
    },
    # `event` is the summary's key (the detail may repeat it or leave it out).
    "security_alerts_summary": {**ALERT_COLUMNS, "event": {"data_type": "text", "nullable": False}},
    "security_alerts_detail": {"audit_event_type": {"data_type": "text"}, **ALERT_COLUMNS},
    "security_benchmarks": {
        "id": {"data_type": "text", "nullable": False},
        "status": {"data_type": "text"},
        "auto_resolve": {"data_type": "bool"},
        "last_updated": {"data_type": "timestamp"},
    },
}
