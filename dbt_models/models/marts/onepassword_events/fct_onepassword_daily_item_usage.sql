-- Item usage by vault and action: one row per tenant, UTC day, vault and action that occurred.
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
    coalesce(vault_uuid, 'unknown') as vault_uuid,
    action,
    count(*) as usages,
    count(distinct user_uuid) as distinct_users,
    count(distinct item_uuid) as distinct_items,
    max(observed_at) as last_observed_at

from {{ ref('stg_onepassword_events__item_usages') }}
where not is_time_out_of_range
    and {{ changed_days([ref('stg_onepassword_events__item_usages')]) }}
group by tenant, event_date, coalesce(vault_uuid, 'unknown'), action
