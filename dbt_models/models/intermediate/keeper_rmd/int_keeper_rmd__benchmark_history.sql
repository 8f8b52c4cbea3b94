-- Type-2 history of each benchmark's status, derived from the daily snapshots: one row per run
-- of consecutive benchmark snapshots with the same status. A run ends when the status changes
-- or when the benchmark is missing from a snapshot. See macros/snapshot_validity_ranges.sql.
--
-- "What was true on day D":
--   where valid_from <= D and (valid_to > D or valid_to is null)

with

benchmarks as (

    select tenant, snapshot_date, benchmark_id, status
    from {{ ref('stg_keeper_rmd__benchmarks') }}

),

-- The days on which the benchmarks endpoint was snapshotted.
benchmark_days as (

    select tenant, snapshot_date
    from {{ ref('int_keeper_rmd__snapshots') }}
    where has_benchmarks

),

ranges as (

    {{ snapshot_validity_ranges(
        rows='benchmarks',
        snapshot_days='benchmark_days',
        key_columns=['benchmark_id'],
        state_columns=['status']
    ) }}

)

select
    tenant,
    benchmark_id,
    status,
    valid_from,
    valid_to,
    is_current,
    last_seen_on,
    snapshots_in_range

from ranges
