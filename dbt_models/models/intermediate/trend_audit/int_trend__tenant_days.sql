-- The tenant's calendar: every UTC day from its first loaded event to the day of the latest
-- load that brought one of its events (rows keep their first observation), so that a day
-- without events is a row of zeros and carries the keys still alive.

with

bounds as (

    select
        tenant,
        min(event_date) as first_day,
        max(cast(observed_at as date)) as last_day
    from {{ ref('stg_trend__audit_logs') }}
    group by tenant

),

digits as (

    select 0 as d union all select 1 union all select 2 union all select 3
    union all select 4 union all select 5 union all select 6 union all select 7
    union all select 8 union all select 9

),

day_numbers as (

    -- 0 .. 99,999 days (274 years) without a platform-specific series function
    select
        ones.d + 10 * tens.d + 100 * hundreds.d + 1000 * thousands.d
        + 10000 * ten_thousands.d as day_number
    from digits as ones
    cross join digits as tens
    cross join digits as hundreds
    cross join digits as thousands
    cross join digits as ten_thousands

)

select
    bounds.tenant,
    cast({{ dbt.dateadd('day', 'day_numbers.day_number', 'bounds.first_day') }} as date)
        as event_date

from bounds
inner join day_numbers
    on day_numbers.day_number <= {{ dbt.datediff('bounds.first_day', 'bounds.last_day', 'day') }}
