-- The wide daily table a BI dashboard reads: one row per source (vendor), tenant and day with
-- the headline KPIs of every vendor.
--
-- Union-ready: each vendor is one CTE producing exactly the columns of `final`, in the same
-- order, with a typed NULL for any KPI the vendor does not have. To add a vendor (Trend Micro
-- Cloud One, 1Password), add its CTE, add its own KPI columns (NULL in the other CTEs) and one
-- more `union all`.

with

keeper as (

    select
        'keeper' as source,
        tenant,
        snapshot_date as metric_date,

        -- users
        total_users,
        users_logged_recent,
        login_coverage,
        users_has_records,
        vault_adoption,
        dormant_users,
        never_logged_in,

        -- benchmarks
        benchmarks_resolved,
        benchmarks_in_scope,
        benchmark_remediation_rate,

        -- alerts
        alert_occurrences

    from {{ ref('fct_keeper_daily_kpis') }}

),

final as (

    select * from keeper

    -- union all
    -- select * from trend_micro_cloud_one
    -- union all
    -- select * from onepassword

)

select * from final
