-- Sign-in attempts by outcome category: one row per tenant, UTC day and category that occurred.
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
    category,
    count(*) as attempts,
    count(distinct user_uuid) as distinct_users,
    max(observed_at) as last_observed_at

from {{ ref('int_onepassword_events__signin_attempts') }}
where not is_time_out_of_range
    and {{ changed_days([ref('int_onepassword_events__signin_attempts')]) }}
group by tenant, event_date, category
