-- The wide daily table a BI dashboard reads: one row per source (vendor), tenant and day with
-- the headline KPIs of every vendor. Each vendor is one CTE naming only its own KPIs; the spine
-- holds every (source, tenant, day) and each vendor's CTE is joined to its own rows, so a
-- column is NULL where its vendor does not apply. To add a vendor: its CTE, one line in the
-- spine, one join and its columns. Each tenant's organisation comes from the configuration
-- file (stg_config__tenants); the last day of an event source's calendar is the day of its
-- newest load, which had not ended when it was observed, so it is marked as partial.

with

keeper as (

    select
        'keeper' as source,
        tenant,
        snapshot_date as metric_date,
        total_users,
        users_logged_recent,
        login_coverage,
        users_has_records,
        vault_adoption,
        dormant_users,
        never_logged_in,
        benchmarks_resolved,
        benchmarks_in_scope,
        benchmark_remediation_rate,
        alert_occurrences
    from {{ ref('fct_keeper_daily_kpis') }}

),

trend as (

    select
        'trend' as source,
        tenant,
        event_date as metric_date,
        events_total as trend_events,
        sign_ins as trend_sign_ins,
        distinct_principals_signing_in as trend_principals_signing_in,
        api_keys_created as trend_api_keys_created,
        api_keys_deleted as trend_api_keys_deleted,
        api_keys_alive as trend_api_keys_alive,
        invitations as trend_invitations,
        role_changes as trend_role_changes,
        privileged_changes as trend_privileged_changes
    from {{ ref('fct_trend_daily_kpis') }}

),

onepassword as (

    select
        'onepassword' as source,
        tenant,
        event_date as metric_date,
        signin_attempts,
        signin_failures,
        signin_failure_rate,
        distinct_users_signing_in,
        item_usages,
        reveals as item_reveals,
        copies as item_copies,
        exports as item_exports,
        shares as item_shares,
        audit_events as onepassword_audit_events,
        mfa_disabled,
        users_suspended,
        vault_exports
    from {{ ref('fct_onepassword_daily_kpis') }}

),

spine as (

    select source, tenant, metric_date from keeper
    union all
    select source, tenant, metric_date from trend
    union all
    select source, tenant, metric_date from onepassword

),

final as (

    select
        spine.source,
        spine.tenant,
        coalesce(tenants.organisation, {{ default_organisation() }}) as organisation,
        spine.metric_date,
        spine.source <> 'keeper'
        and spine.metric_date = max(spine.metric_date) over (
            partition by spine.source, spine.tenant
        ) as is_partial_day,

        -- Keeper RMD: users, benchmarks, alerts
        keeper.total_users,
        keeper.users_logged_recent,
        keeper.login_coverage,
        keeper.users_has_records,
        keeper.vault_adoption,
        keeper.dormant_users,
        keeper.never_logged_in,
        keeper.benchmarks_resolved,
        keeper.benchmarks_in_scope,
        keeper.benchmark_remediation_rate,
        keeper.alert_occurrences,

        -- Trend Micro Cloud One: audit events, sign-ins, API keys, privileged changes
        trend.trend_events,
        trend.trend_sign_ins,
        trend.trend_principals_signing_in,
        trend.trend_api_keys_created,
        trend.trend_api_keys_deleted,
        trend.trend_api_keys_alive,
        trend.trend_invitations,
        trend.trend_role_changes,
        trend.trend_privileged_changes,

        -- 1Password: sign-ins, item usage, sensitive audit actions
        onepassword.signin_attempts,
        onepassword.signin_failures,
        onepassword.signin_failure_rate,
        onepassword.distinct_users_signing_in,
        onepassword.item_usages,
        onepassword.item_reveals,
        onepassword.item_copies,
        onepassword.item_exports,
        onepassword.item_shares,
        onepassword.onepassword_audit_events,
        onepassword.mfa_disabled,
        onepassword.users_suspended,
        onepassword.vault_exports

    from spine
    left join {{ ref('stg_config__tenants') }} as tenants
        on spine.source = tenants.source
        and spine.tenant = tenants.tenant
    left join keeper
        on spine.source = keeper.source
        and spine.tenant = keeper.tenant
        and spine.metric_date = keeper.metric_date
    left join trend
        on spine.source = trend.source
        and spine.tenant = trend.tenant
        and spine.metric_date = trend.metric_date
    left join onepassword
        on spine.source = onepassword.source
        and spine.tenant = onepassword.tenant
        and spine.metric_date = onepassword.metric_date

)

select * from final
