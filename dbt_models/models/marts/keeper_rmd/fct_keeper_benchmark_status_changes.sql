-- The audit trail of benchmark statuses: one row per tenant, benchmark and snapshot day whose
-- status differs from the previous snapshot that listed the benchmark. A benchmark's first
-- snapshot has nothing to differ from and is not a change.

with

status_daily as (

    select * from {{ ref('int_keeper_rmd__benchmark_status_daily') }}

)

select
    tenant,
    benchmark_id,
    snapshot_date as changed_on,
    previous_snapshot_date as previous_snapshot_on,
    previous_status as from_status,
    status as to_status,
    previous_status = 'RESOLVED' and status = 'UNRESOLVED' as is_regression,
    status = 'RESOLVED' as is_resolution,
    last_updated_at,
    observed_at

from status_daily
where previous_status is not null
  and previous_status <> status
