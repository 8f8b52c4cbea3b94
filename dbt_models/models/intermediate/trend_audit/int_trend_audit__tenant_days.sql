-- The tenant's calendar: every UTC day from its first loaded event to the day of the latest
-- load that brought one of its events (rows keep their first observation), so that a day
-- without events is a row of zeros and carries the keys still alive.

with

bounds as (

    select
        tenant,
        min(event_date) as first_day,
        max(cast(observed_at as date)) as last_day
    from {{ ref('stg_trend_audit__audit_logs') }}
    where not is_time_out_of_range
    group by tenant

)

{{ tenant_days('bounds') }}
