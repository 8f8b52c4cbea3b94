-- Cloud One audit events counted per tenant, UTC day and event type (types that did not occur
-- that day have no row).
-- Incremental: a build recomputes only the days newly loaded events fall on (whole days, so the
-- key that replaces them is the tenant and day).
{{ config(
    materialized='incremental',
    unique_key=['tenant', 'event_date'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns'
) }}

select
    tenant,
    event_date,
    event_type,
    count(*) as events,
    count(distinct principal_urn) as distinct_principals,
    min(event_at) as first_event_at,
    max(event_at) as last_event_at,
    max(observed_at) as last_observed_at

from {{ ref('int_trend_audit__audit_events') }}
where not is_time_out_of_range
    and {{ changed_days([ref('int_trend_audit__audit_events')]) }}
group by tenant, event_date, event_type
