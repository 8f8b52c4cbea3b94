-- Cloud One's daily KPIs: one row per tenant and UTC day of its calendar (a quiet day is a row
-- of zeros). Every total stands beside its parts.
-- Incremental: a build recomputes only the days from the earliest day a newly loaded event
-- falls on to the end of the calendar (a quiet day is new, and a late event can change the
-- days after it).
{{ config(
    materialized='incremental',
    unique_key=['tenant', 'event_date'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns'
) }}

{%- set changed = changed_days([ref('int_trend_audit__audit_events')]) %}

with

days as (

    select tenant, event_date
    from {{ ref('int_trend_audit__tenant_days') }}
    where {{ changed }}

),

event_counts as (

    select
        tenant,
        event_date,
        count(*) as events_total,
        {%- for flag, column in [
            ('is_sign_in', 'sign_ins'),
            ('is_sign_out', 'sign_outs'),
            ('is_api_key_created', 'api_keys_created'),
            ('is_api_key_updated', 'api_keys_updated'),
            ('is_api_key_deleted', 'api_keys_deleted'),
            ('is_invitation', 'invitations'),
            ('is_role_change', 'role_changes'),
            ('is_user_change', 'user_changes'),
            ('is_privileged_change', 'privileged_changes'),
        ] %}
        cast(sum(case when {{ flag }} then 1 else 0 end) as {{ dbt.type_bigint() }})
            as {{ column }},
        {%- endfor %}
        count(distinct case when is_sign_in then principal_urn end)
            as distinct_principals_signing_in,
        max(observed_at) as last_observed_at

    from {{ ref('int_trend_audit__audit_events') }}
    where not is_time_out_of_range and {{ changed }}
    group by tenant, event_date

),

keys_alive as (

    -- keys created on or before the day (in the loaded history) and not deleted by its end
    select
        days.tenant,
        days.event_date,
        count(keys.api_key_id) as api_keys_alive

    from days
    left join {{ ref('fct_trend_api_keys') }} as keys
        on days.tenant = keys.tenant
        and cast(keys.created_at as date) <= days.event_date
        and (keys.deleted_at is null or cast(keys.deleted_at as date) > days.event_date)
    group by days.tenant, days.event_date

)

select
    days.tenant,
    days.event_date,
    coalesce(event_counts.events_total, 0) as events_total,
    coalesce(event_counts.sign_ins, 0) as sign_ins,
    coalesce(event_counts.distinct_principals_signing_in, 0) as distinct_principals_signing_in,
    coalesce(event_counts.sign_outs, 0) as sign_outs,
    coalesce(event_counts.api_keys_created, 0) as api_keys_created,
    coalesce(event_counts.api_keys_updated, 0) as api_keys_updated,
    coalesce(event_counts.api_keys_deleted, 0) as api_keys_deleted,
    keys_alive.api_keys_alive,
    coalesce(event_counts.invitations, 0) as invitations,
    coalesce(event_counts.role_changes, 0) as role_changes,
    coalesce(event_counts.user_changes, 0) as user_changes,
    coalesce(event_counts.privileged_changes, 0) as privileged_changes,
    event_counts.last_observed_at

from days
inner join keys_alive
    on days.tenant = keys_alive.tenant
    and days.event_date = keys_alive.event_date
left join event_counts
    on days.tenant = event_counts.tenant
    and days.event_date = event_counts.event_date
