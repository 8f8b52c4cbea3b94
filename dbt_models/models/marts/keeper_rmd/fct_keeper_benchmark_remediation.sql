-- Remediation of each benchmark over the whole history: one row per tenant and benchmark.
--
-- resolved_at: at the first snapshot that saw the benchmark RESOLVED, the vendor's
--   last_updated when present, else that snapshot's observed_at.
-- days_to_resolve: days from the first snapshot that saw it UNRESOLVED to resolved_at; NULL
--   when it was never resolved, or when it was already resolved before it was first seen
--   unresolved (e.g. first seen RESOLVED).

with

status_daily as (

    select * from {{ ref('int_keeper_rmd__benchmark_status_daily') }}

),

benchmarks as (

    select benchmark_id, title, category
    from {{ ref('dim_keeper_benchmarks') }}

),

lifecycle as (

    select
        tenant,
        benchmark_id,
        min(snapshot_date) as first_seen_on,
        min(case when is_first_seen then observed_at end) as first_seen_at,
        max(snapshot_date) as last_seen_on,
        min(case when status = 'UNRESOLVED' then snapshot_date end) as first_seen_unresolved_on,
        min(case when status = 'RESOLVED' then snapshot_date end) as first_seen_resolved_on,
        cast(sum(
            case when previous_status = 'RESOLVED' and status = 'UNRESOLVED' then 1 else 0 end
        ) as {{ dbt.type_bigint() }}) as regression_count,
        max(
            case when previous_status = 'RESOLVED' and status = 'UNRESOLVED' then snapshot_date end
        ) as last_regressed_on

    from status_daily
    group by tenant, benchmark_id

),

latest as (

    select tenant, benchmark_id, status as current_status
    from status_daily
    where is_last_seen

),

first_resolution as (

    select
        status_daily.tenant,
        status_daily.benchmark_id,
        coalesce(status_daily.last_updated_at, status_daily.observed_at) as resolved_at

    from status_daily
    inner join lifecycle
        on status_daily.tenant = lifecycle.tenant
        and status_daily.benchmark_id = lifecycle.benchmark_id
        and status_daily.snapshot_date = lifecycle.first_seen_resolved_on

)

select
    lifecycle.tenant,
    lifecycle.benchmark_id,
    benchmarks.title,
    benchmarks.category,
    latest.current_status,
    lifecycle.first_seen_on,
    lifecycle.first_seen_at,
    lifecycle.last_seen_on,
    lifecycle.first_seen_unresolved_on,
    lifecycle.first_seen_resolved_on,
    first_resolution.resolved_at,
    case
        when lifecycle.first_seen_unresolved_on < lifecycle.first_seen_resolved_on
            then {{ dbt.datediff('lifecycle.first_seen_unresolved_on', 'first_resolution.resolved_at', 'day') }}
    end as days_to_resolve,
    lifecycle.regression_count,
    lifecycle.last_regressed_on

from lifecycle
inner join latest
    on lifecycle.tenant = latest.tenant
    and lifecycle.benchmark_id = latest.benchmark_id
left join first_resolution
    on lifecycle.tenant = first_resolution.tenant
    and lifecycle.benchmark_id = first_resolution.benchmark_id
left join benchmarks
    on lifecycle.benchmark_id = benchmarks.benchmark_id
