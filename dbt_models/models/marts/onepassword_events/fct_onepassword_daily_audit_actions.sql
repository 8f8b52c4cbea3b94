-- Audit events by action and object type: one row per tenant, UTC day, action and object type
-- that occurred.
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
    action,
    coalesce(object_type, 'unknown') as object_type,
    count(*) as events,
    count(distinct actor_uuid) as distinct_actors,
    max(observed_at) as last_observed_at

from {{ ref('stg_onepassword_events__audit_events') }}
where not is_time_out_of_range
    and {{ changed_days([ref('stg_onepassword_events__audit_events')]) }}
group by tenant, event_date, action, coalesce(object_type, 'unknown')
