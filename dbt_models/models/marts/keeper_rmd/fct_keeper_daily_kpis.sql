-- Keeper's daily KPIs: one row per tenant and snapshot day. Every ratio sits beside its
-- numerator and denominator; the API's counts sit beside the same counts derived from the
-- user details (the *_crosscheck_diff columns; tests warn when they differ).
-- Incremental: a build recomputes the snapshot days from the earliest one loaded since its
-- newest observation (less the lookback), each day from that day's rows only.
{{ config(
    materialized='incremental',
    unique_key=['tenant', 'snapshot_date'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns'
) }}

{#- Every Keeper load snapshots the enterprise stats, so these say which days a load changed. -#}
{%- set snapshot_relations = [
    ref('stg_keeper_rmd__enterprise_stats'),
    ref('int_keeper_rmd__users_daily'),
    ref('stg_keeper_rmd__benchmarks'),
    ref('stg_keeper_rmd__alert_summaries'),
] %}
{%- set changed = changed_snapshot_days(snapshot_relations, 'last_observed_at') %}

with

snapshots as (

    select tenant, snapshot_date
    from {{ ref('int_keeper_rmd__snapshots') }}
    where {{ changed }}

),

observed as (

    select tenant, snapshot_date, max(observed_at) as last_observed_at
    from (
        {%- for relation in snapshot_relations %}
        select tenant, snapshot_date, observed_at from {{ relation }} where {{ changed }}
        {{- " union all" if not loop.last }}
        {%- endfor %}
    ) as snapshot_rows
    group by tenant, snapshot_date

),

enterprise_stats as (

    select tenant, snapshot_date, users_logged_recent, users_has_records
    from {{ ref('stg_keeper_rmd__enterprise_stats') }}
    where {{ changed }}

),

user_counts as (

    select
        tenant,
        snapshot_date,
        count(*) as total_users,
        cast(sum(case when is_recent then 1 else 0 end) as {{ dbt.type_bigint() }})
            as users_logged_recent_from_details,
        cast(sum(case when has_records then 1 else 0 end) as {{ dbt.type_bigint() }})
            as users_has_records_from_details,
        cast(sum(case when is_dormant then 1 else 0 end) as {{ dbt.type_bigint() }})
            as dormant_users,
        cast(sum(case when never_logged_in then 1 else 0 end) as {{ dbt.type_bigint() }})
            as never_logged_in

    from {{ ref('int_keeper_rmd__users_daily') }}
    where {{ changed }}
    group by tenant, snapshot_date

),

benchmark_counts as (

    select
        tenant,
        snapshot_date,
        count(*) as benchmarks_total,
        cast(sum(case when status = 'RESOLVED' then 1 else 0 end) as {{ dbt.type_bigint() }})
            as benchmarks_resolved,
        cast(sum(case when status = 'UNRESOLVED' then 1 else 0 end) as {{ dbt.type_bigint() }})
            as benchmarks_unresolved,
        cast(sum(case when status = 'IGNORED' then 1 else 0 end) as {{ dbt.type_bigint() }})
            as benchmarks_ignored,
        cast(sum(case when status = 'INVALID' then 1 else 0 end) as {{ dbt.type_bigint() }})
            as benchmarks_invalid

    from {{ ref('stg_keeper_rmd__benchmarks') }}
    where {{ changed }}
    group by tenant, snapshot_date

),

alert_counts as (

    select
        tenant,
        snapshot_date,
        count(distinct event_type) as alert_event_types,
        cast(sum(occurrences_30d) as {{ dbt.type_bigint() }}) as alert_occurrences

    from {{ ref('stg_keeper_rmd__alert_summaries') }}
    where {{ changed }}
    group by tenant, snapshot_date

),

joined as (

    select
        snapshots.tenant,
        snapshots.snapshot_date,

        -- users: an empty (or missing) details list counts as 0 users
        coalesce(user_counts.total_users, 0) as total_users,
        enterprise_stats.users_logged_recent,
        coalesce(user_counts.users_logged_recent_from_details, 0)
            as users_logged_recent_from_details,
        enterprise_stats.users_has_records,
        coalesce(user_counts.users_has_records_from_details, 0)
            as users_has_records_from_details,
        coalesce(user_counts.dormant_users, 0) as dormant_users,
        coalesce(user_counts.never_logged_in, 0) as never_logged_in,

        -- benchmarks
        coalesce(benchmark_counts.benchmarks_total, 0) as benchmarks_total,
        coalesce(benchmark_counts.benchmarks_resolved, 0) as benchmarks_resolved,
        coalesce(benchmark_counts.benchmarks_unresolved, 0) as benchmarks_unresolved,
        coalesce(benchmark_counts.benchmarks_ignored, 0) as benchmarks_ignored,
        coalesce(benchmark_counts.benchmarks_invalid, 0) as benchmarks_invalid,

        -- alerts (trailing 30 days)
        coalesce(alert_counts.alert_event_types, 0) as alert_event_types,
        coalesce(alert_counts.alert_occurrences, 0) as alert_occurrences,

        observed.last_observed_at

    from snapshots
    left join enterprise_stats
        on snapshots.tenant = enterprise_stats.tenant
        and snapshots.snapshot_date = enterprise_stats.snapshot_date
    left join user_counts
        on snapshots.tenant = user_counts.tenant
        and snapshots.snapshot_date = user_counts.snapshot_date
    left join benchmark_counts
        on snapshots.tenant = benchmark_counts.tenant
        and snapshots.snapshot_date = benchmark_counts.snapshot_date
    left join alert_counts
        on snapshots.tenant = alert_counts.tenant
        and snapshots.snapshot_date = alert_counts.snapshot_date
    left join observed
        on snapshots.tenant = observed.tenant
        and snapshots.snapshot_date = observed.snapshot_date

)

select
    tenant,
    snapshot_date,

    total_users,

    users_logged_recent,
    {{ ratio('users_logged_recent', 'total_users') }} as login_coverage,
    users_logged_recent_from_details,
    users_logged_recent - users_logged_recent_from_details as login_crosscheck_diff,

    users_has_records,
    {{ ratio('users_has_records', 'total_users') }} as vault_adoption,
    users_has_records_from_details,
    users_has_records - users_has_records_from_details as vault_crosscheck_diff,

    dormant_users,
    never_logged_in,

    benchmarks_total,
    benchmarks_resolved,
    benchmarks_unresolved,
    benchmarks_ignored,
    benchmarks_invalid,
    benchmarks_total - benchmarks_ignored as benchmarks_in_scope,
    {{ ratio('benchmarks_resolved', 'benchmarks_total - benchmarks_ignored') }}
        as benchmark_remediation_rate,

    alert_event_types,
    alert_occurrences,

    last_observed_at

from joined
