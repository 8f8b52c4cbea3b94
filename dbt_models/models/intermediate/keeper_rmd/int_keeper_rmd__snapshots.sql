-- The tenant's snapshot calendar: every day on which any Keeper endpoint was snapshotted,
-- numbered in order, with which endpoints answered that day.

with

snapshot_rows as (

    select distinct tenant, snapshot_date, 'enterprise_stat' as endpoint
    from {{ ref('stg_keeper_rmd__enterprise_stats') }}

    union all

    select distinct tenant, snapshot_date, 'user_details' as endpoint
    from {{ ref('stg_keeper_rmd__users') }}

    union all

    select distinct tenant, snapshot_date, 'benchmarks' as endpoint
    from {{ ref('stg_keeper_rmd__benchmarks') }}

    union all

    select distinct tenant, snapshot_date, 'alert_summary' as endpoint
    from {{ ref('stg_keeper_rmd__alert_summaries') }}

    union all

    select distinct tenant, snapshot_date, 'alert_details' as endpoint
    from {{ ref('stg_keeper_rmd__alert_details') }}

),

snapshot_days as (

    select
        tenant,
        snapshot_date,
        max(case when endpoint = 'enterprise_stat' then 1 else 0 end) = 1 as has_enterprise_stat,
        max(case when endpoint = 'user_details' then 1 else 0 end) = 1 as has_user_details,
        max(case when endpoint = 'benchmarks' then 1 else 0 end) = 1 as has_benchmarks,
        max(case when endpoint = 'alert_summary' then 1 else 0 end) = 1 as has_alert_summary,
        max(case when endpoint = 'alert_details' then 1 else 0 end) = 1 as has_alert_details

    from snapshot_rows
    group by tenant, snapshot_date

),

numbered as (

    select
        tenant,
        snapshot_date,
        row_number() over (
            partition by tenant order by snapshot_date
        ) as snapshot_number,
        lag(snapshot_date) over (
            partition by tenant order by snapshot_date
        ) as previous_snapshot_date,
        has_enterprise_stat,
        has_user_details,
        has_benchmarks,
        has_alert_summary,
        has_alert_details

    from snapshot_days

)

select
    tenant,
    snapshot_date,
    snapshot_number,
    snapshot_number = 1 as is_first_snapshot,
    previous_snapshot_date,
    has_enterprise_stat,
    has_user_details,
    has_benchmarks,
    has_alert_summary,
    has_alert_details

from numbered
