-- The account's calendar: every UTC day from its first loaded event (of any kind) to the day of
-- its latest load, so that a quiet day is a row of zeros in the daily KPIs.

with

event_days as (

    select tenant, event_date, observed_at from {{ ref('stg_onepassword_events__signin_attempts') }}
    where not is_time_out_of_range
    union all
    select tenant, event_date, observed_at from {{ ref('stg_onepassword_events__item_usages') }}
    where not is_time_out_of_range
    union all
    select tenant, event_date, observed_at from {{ ref('stg_onepassword_events__audit_events') }}
    where not is_time_out_of_range

),

bounds as (

    select
        tenant,
        min(event_date) as first_day,
        max(cast(observed_at as date)) as last_day
    from event_days
    group by tenant

)

{{ tenant_days('bounds') }}
