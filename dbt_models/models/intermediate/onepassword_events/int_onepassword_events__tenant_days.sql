-- The account's calendar: every UTC day from its first loaded event (of any kind) to the day of
-- its latest load, so that a quiet day is a row of zeros in the daily KPIs.
-- Incremental: a build reads only the newly loaded events and the calendar of their tenants,
-- which it rebuilds from the bounds they give together (a late event can move the first day).
{{ config(
    materialized='incremental',
    unique_key=['tenant', 'event_date'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns'
) }}

with

events as (

    {%- for model in [
        'stg_onepassword_events__signin_attempts',
        'stg_onepassword_events__item_usages',
        'stg_onepassword_events__audit_events',
    ] %}
    select tenant, event_date, observed_at, is_time_out_of_range from {{ ref(model) }}
    where {{ newly_loaded(this_column='last_observed_at') }}
    {{- " union all" if not loop.last }}
    {%- endfor %}

),

event_days as (

    -- Out-of-range events are left out in the aggregates, not by a filter beside the one on
    -- observed_at, which DuckDB would then no longer push down to the tables' scans.
    select
        tenant,
        event_date,
        max(observed_at) filter (where not is_time_out_of_range) as last_observed_at
    from events
    group by tenant, event_date
    having count(*) filter (where not is_time_out_of_range) > 0

    {%- if is_incremental() %}
    union all
    select tenant, event_date, last_observed_at
    from {{ this }}
    where tenant in (select tenant from events where not is_time_out_of_range)
    {%- endif %}

),

observed_days as (

    select tenant, event_date, max(last_observed_at) as last_observed_at
    from event_days
    group by tenant, event_date

),

bounds as (

    select
        tenant,
        min(event_date) as first_day,
        max(cast(last_observed_at as date)) as last_day
    from observed_days
    group by tenant

),

calendar as (

    {{ tenant_days('bounds') }}

)

select
    calendar.tenant,
    calendar.event_date,
    observed_days.last_observed_at

from calendar
left join observed_days
    on calendar.tenant = observed_days.tenant
    and calendar.event_date = observed_days.event_date
