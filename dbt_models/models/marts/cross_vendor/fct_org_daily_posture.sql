-- One row per organisation and day: every headline KPI of fct_daily_posture summed over the
-- organisation's tenants, each ratio computed again from the summed numerator and denominator
-- (never an average of the tenants' ratios). A vendor's columns are NULL for an organisation
-- with none of its tenants that day. A day is partial while any of the organisation's event
-- sources has not yet been observed past it.

{%- set summed = [
    'total_users', 'users_logged_recent', 'users_has_records', 'dormant_users',
    'never_logged_in', 'benchmarks_resolved', 'benchmarks_in_scope', 'alert_occurrences',
    'trend_events', 'trend_sign_ins', 'trend_principals_signing_in', 'trend_api_keys_created',
    'trend_api_keys_deleted', 'trend_api_keys_alive', 'trend_invitations', 'trend_role_changes',
    'trend_privileged_changes',
    'signin_attempts', 'signin_failures', 'distinct_users_signing_in', 'item_usages',
    'item_reveals', 'item_copies', 'item_exports', 'item_shares', 'onepassword_audit_events',
    'mfa_disabled', 'users_suspended', 'vault_exports',
] %}

with

tenant_days as (

    select * from {{ ref('fct_daily_posture') }}

),

-- The last day each event-source tenant has been observed on (its partial day).
event_tenant_last_days as (

    select
        organisation,
        source,
        tenant,
        max(metric_date) as last_observed_day

    from tenant_days
    where source <> 'keeper'
    group by organisation, source, tenant

),

organisation_complete_before as (

    select
        organisation,
        min(last_observed_day) as first_partial_day

    from event_tenant_last_days
    group by organisation

),

sums as (

    select
        organisation,
        metric_date,
        {%- for source in ['keeper', 'trend', 'onepassword'] %}
        cast(sum(case when source = '{{ source }}' then 1 else 0 end) as {{ dbt.type_bigint() }})
            as {{ source }}_tenants,
        {%- endfor %}
        {%- for column in summed %}
        cast(sum({{ column }}) as {{ dbt.type_bigint() }}) as {{ column }}
        {{- "," if not loop.last }}
        {%- endfor %}

    from tenant_days
    group by organisation, metric_date

)

select
    sums.organisation,
    sums.metric_date,
    coalesce(sums.metric_date >= complete.first_partial_day, false) as is_partial_day,
    sums.keeper_tenants,
    sums.trend_tenants,
    sums.onepassword_tenants,

    -- Keeper RMD: users, benchmarks, alerts
    sums.total_users,
    sums.users_logged_recent,
    {{ ratio('sums.users_logged_recent', 'sums.total_users') }} as login_coverage,
    sums.users_has_records,
    {{ ratio('sums.users_has_records', 'sums.total_users') }} as vault_adoption,
    sums.dormant_users,
    sums.never_logged_in,
    sums.benchmarks_resolved,
    sums.benchmarks_in_scope,
    {{ ratio('sums.benchmarks_resolved', 'sums.benchmarks_in_scope') }}
        as benchmark_remediation_rate,
    sums.alert_occurrences,

    -- Trend Micro Cloud One: audit events, sign-ins, API keys, privileged changes
    sums.trend_events,
    sums.trend_sign_ins,
    sums.trend_principals_signing_in,
    sums.trend_api_keys_created,
    sums.trend_api_keys_deleted,
    sums.trend_api_keys_alive,
    sums.trend_invitations,
    sums.trend_role_changes,
    sums.trend_privileged_changes,

    -- 1Password: sign-ins, item usage, sensitive audit actions
    sums.signin_attempts,
    sums.signin_failures,
    {{ ratio('sums.signin_failures', 'sums.signin_attempts') }} as signin_failure_rate,
    sums.distinct_users_signing_in,
    sums.item_usages,
    sums.item_reveals,
    sums.item_copies,
    sums.item_exports,
    sums.item_shares,
    sums.onepassword_audit_events,
    sums.mfa_disabled,
    sums.users_suspended,
    sums.vault_exports

from sums
left join organisation_complete_before as complete
    on sums.organisation = complete.organisation
