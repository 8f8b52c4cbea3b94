-- 1Password's daily KPIs: one row per tenant and UTC day, every day from the account's first
-- loaded event to its latest load (a quiet day is a row of zeros). Each ratio stands beside its
-- numerator and denominator.
-- Incremental: a build recomputes only the days from the earliest day a newly loaded event
-- falls on to the end of the calendar (a quiet day is new, and a late event can change the
-- days after it).
{{ config(
    materialized='incremental',
    unique_key=['tenant', 'event_date'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns'
) }}

{%- set event_relations = [
    ref('int_onepassword_events__signin_attempts'),
    ref('stg_onepassword_events__item_usages'),
    ref('stg_onepassword_events__audit_events'),
] %}
{%- set changed = changed_days(event_relations) %}

with

days as (

    select tenant, event_date
    from {{ ref('int_onepassword_events__tenant_days') }}
    where {{ changed }}

),

signins as (

    select
        tenant,
        event_date,
        count(*) as signin_attempts,
        cast(
            sum(case when is_success then 0 else 1 end) as {{ dbt.type_bigint() }}
        ) as signin_failures,
        count(distinct case when is_success then user_uuid end) as distinct_users_signing_in

    from {{ ref('int_onepassword_events__signin_attempts') }}
    where not is_time_out_of_range and {{ changed }}
    group by tenant, event_date

),

item_usages as (

    select
        tenant,
        event_date,
        count(*) as item_usages,
        {%- for action, column in [
            ('reveal', 'reveals'),
            ('secure-copy', 'copies'),
            ('export', 'exports'),
            ('share', 'shares'),
        ] %}
        cast(sum(case when action = '{{ action }}' then 1 else 0 end) as {{ dbt.type_bigint() }})
            as {{ column }}
        {{- "," if not loop.last }}
        {%- endfor %}

    from {{ ref('stg_onepassword_events__item_usages') }}
    where not is_time_out_of_range and {{ changed }}
    group by tenant, event_date

),

audit_events as (

    select
        tenant,
        event_date,
        count(*) as audit_events

    from {{ ref('stg_onepassword_events__audit_events') }}
    where not is_time_out_of_range and {{ changed }}
    group by tenant, event_date

),

sensitive as (

    select
        tenant,
        event_date,
        {%- for kind, column in [
            ('mfa_disabled', 'mfa_disabled'),
            ('user_suspended', 'users_suspended'),
            ('vault_export', 'vault_exports'),
        ] %}
        cast(sum(case when sensitive_action = '{{ kind }}' then 1 else 0 end)
            as {{ dbt.type_bigint() }}) as {{ column }}
        {{- "," if not loop.last }}
        {%- endfor %}

    from {{ ref('fct_onepassword_sensitive_actions') }}
    where not is_time_out_of_range and {{ changed }}
    group by tenant, event_date

),

observed as (

    select tenant, event_date, max(observed_at) as last_observed_at
    from (
        {%- for relation in event_relations %}
        select tenant, event_date, observed_at
        from {{ relation }}
        where not is_time_out_of_range and {{ changed }}
        {{- " union all" if not loop.last }}
        {%- endfor %}
    ) as events
    group by tenant, event_date

),

counts as (

    select
        days.tenant,
        days.event_date,
        coalesce(signins.signin_attempts, 0) as signin_attempts,
        coalesce(signins.signin_failures, 0) as signin_failures,
        coalesce(signins.distinct_users_signing_in, 0) as distinct_users_signing_in,
        coalesce(item_usages.item_usages, 0) as item_usages,
        coalesce(item_usages.reveals, 0) as reveals,
        coalesce(item_usages.copies, 0) as copies,
        coalesce(item_usages.exports, 0) as exports,
        coalesce(item_usages.shares, 0) as shares,
        coalesce(audit_events.audit_events, 0) as audit_events,
        coalesce(sensitive.mfa_disabled, 0) as mfa_disabled,
        coalesce(sensitive.users_suspended, 0) as users_suspended,
        coalesce(sensitive.vault_exports, 0) as vault_exports,
        observed.last_observed_at

    from days
    left join signins
        on days.tenant = signins.tenant and days.event_date = signins.event_date
    left join item_usages
        on days.tenant = item_usages.tenant and days.event_date = item_usages.event_date
    left join audit_events
        on days.tenant = audit_events.tenant and days.event_date = audit_events.event_date
    left join sensitive
        on days.tenant = sensitive.tenant and days.event_date = sensitive.event_date
    left join observed
        on days.tenant = observed.tenant and days.event_date = observed.event_date

)

select
    tenant,
    event_date,
    signin_attempts,
    signin_failures,
    {{ ratio('signin_failures', 'signin_attempts') }} as signin_failure_rate,
    distinct_users_signing_in,
    item_usages,
    reveals,
    copies,
    exports,
    shares,
    audit_events,
    mfa_disabled,
    users_suspended,
    vault_exports,
    last_observed_at

from counts
