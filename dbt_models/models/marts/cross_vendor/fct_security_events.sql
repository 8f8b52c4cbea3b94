-- Every security event from every event source in one shape, so that one query answers "what
-- did this person do across our security tools last week". Classes follow OCSF's names where
-- one fits (Authentication, Account Change); item usage has no OCSF class and keeps NULL.
-- Incremental: a build reads only each raw table's newly loaded events and replaces those it
-- already had (an event fetched again); the vendor's JSON stays in the raw table, found by
-- source_table, tenant and event_id. Each event names the person who acted by lower-cased e-mail
-- (person_email, person_key: see dim_people): 1Password gives the e-mail; a Trend principal's
-- comes from the user events that name it (int_cross_vendor__person_identities), as known when
-- the event is first built.
{{ config(
    materialized='incremental',
    unique_key=['source_table', 'tenant', 'event_id'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns'
) }}

with

trend as (

    select
        'trend' as source,
        'audit_logs' as source_table,
        logs.tenant,
        event_id,
        event_at,
        event_date,
        is_time_out_of_range,
        case when is_sign_in or is_sign_out then 'Authentication' else 'Account Change' end
            as ocsf_class,
        coalesce(principal_id, principal_urn) as actor,
        people.person_email,
        event_type as action,
        'success' as outcome,  -- the audit log records what was done
        api_key_id as target,
        cast(null as {{ dbt.type_string() }}) as source_ip,
        observed_at,
        load_id
    from {{ ref('int_trend_audit__audit_events') }} as logs
    left join {{ ref('int_cross_vendor__person_identities') }} as people
        on people.source = 'trend'
        and logs.tenant = people.tenant
        and logs.principal_id = people.vendor_user_id
    where {{ newly_loaded("source_table = 'audit_logs'") }}

),

onepassword_signins as (

    select
        'onepassword' as source,
        'signin_attempts' as source_table,
        tenant,
        event_uuid as event_id,
        occurred_at as event_at,
        event_date,
        is_time_out_of_range,
        'Authentication' as ocsf_class,
        user_email as actor,
        lower(trim(user_email)) as person_email,
        'sign_in' as action,
        case when is_success then 'success' else 'failure' end as outcome,
        user_email as target,
        client_ip_address as source_ip,
        observed_at,
        load_id
    from {{ ref('int_onepassword_events__signin_attempts') }}
    where {{ newly_loaded("source_table = 'signin_attempts'") }}

),

onepassword_item_usages as (

    select
        'onepassword' as source,
        'item_usages' as source_table,
        tenant,
        event_uuid as event_id,
        occurred_at as event_at,
        event_date,
        is_time_out_of_range,
        cast(null as {{ dbt.type_string() }}) as ocsf_class,
        user_email as actor,
        lower(trim(user_email)) as person_email,
        action,
        'success' as outcome,
        {{ dbt.concat(["vault_uuid", "'/'", "item_uuid"]) }} as target,
        client_ip_address as source_ip,
        observed_at,
        load_id
    from {{ ref('stg_onepassword_events__item_usages') }}
    where {{ newly_loaded("source_table = 'item_usages'") }}

),

onepassword_audit as (

    select
        'onepassword' as source,
        'audit_events' as source_table,
        tenant,
        event_uuid as event_id,
        occurred_at as event_at,
        event_date,
        is_time_out_of_range,
        case
            when object_type in ('user', 'account') then 'Account Change'
        end as ocsf_class,
        coalesce(actor_email, actor_uuid) as actor,
        lower(trim(actor_email)) as person_email,
        action,
        'success' as outcome,
        coalesce(object_email, object_name, object_uuid) as target,
        session_ip as source_ip,
        observed_at,
        load_id
    from {{ ref('stg_onepassword_events__audit_events') }}
    where {{ newly_loaded("source_table = 'audit_events'") }}

),

events as (

    select * from trend
    union all
    select * from onepassword_signins
    union all
    select * from onepassword_item_usages
    union all
    select * from onepassword_audit

)

select
    *,
    case when person_email is not null then {{ dbt.hash('person_email') }} end as person_key
from events
