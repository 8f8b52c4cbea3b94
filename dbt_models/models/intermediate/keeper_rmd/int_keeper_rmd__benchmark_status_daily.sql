-- Each benchmark on each snapshot day with the status it had on the previous snapshot that
-- listed it, so status changes (resolutions, regressions) are one comparison away.

with

benchmarks as (

    select * from {{ ref('stg_keeper_rmd__benchmarks') }}

)

select
    tenant,
    benchmark_id,
    snapshot_date,
    status,
    is_auto_resolve,
    last_updated_at,
    observed_at,
    lag(status) over (
        partition by tenant, benchmark_id order by snapshot_date
    ) as previous_status,
    lag(snapshot_date) over (
        partition by tenant, benchmark_id order by snapshot_date
    ) as previous_snapshot_date,
    row_number() over (
        partition by tenant, benchmark_id order by snapshot_date
    ) = 1 as is_first_seen,
    row_number() over (
        partition by tenant, benchmark_id order by snapshot_date desc
    ) = 1 as is_last_seen

from benchmarks
