-- Every security event from every event source in one shape, so that one query answers "what
-- did this person do across our security tools last week". Classes follow OCSF's names where
-- one fits (Authentication, Account Change); item usage has no OCSF class and keeps NULL.

with

trend as (

    select
        'trend' as source,
        'audit_logs' as source_table,
        tenant,
        event_id,
        event_at,
        event_date,
        case
            when event_type in ('audit.user-signed-in.v1', 'audit.user-signed-out.v1')
                then 'Authentication'
            else 'Account Change'
        end as ocsf_class,
        coalesce(principal_id, principal_urn) as actor,
        event_type as action,
        'success' as outcome,  -- the audit log records what was done
        api_key_id as target,
        cast(null as {{ dbt.type_string() }}) as source_ip,
        raw_json,
        load_id
    from {{ ref('stg_trend_audit__audit_logs') }}

),

onepassword_signins as (

    select
        'onepassword' as source,
        'signin_attempts' as source_table,
        tenant,
        event_uuid as event_id,
        occurred_at as event_at,
        event_date,
        'Authentication' as ocsf_class,
        user_email as actor,
        'sign_in' as action,
        case when is_success then 'success' else 'failure' end as outcome,
        user_email as target,
        client_ip_address as source_ip,
        raw_json,
        load_id
    from {{ ref('int_onepassword_events__signin_attempts') }}

),

onepassword_item_usages as (

    select
        'onepassword' as source,
        'item_usages' as source_table,
        tenant,
        event_uuid as event_id,
        occurred_at as event_at,
        event_date,
        cast(null as {{ dbt.type_string() }}) as ocsf_class,
        user_email as actor,
        action,
        'success' as outcome,
        {{ dbt.concat(["vault_uuid", "'/'", "item_uuid"]) }} as target,
        client_ip_address as source_ip,
        raw_json,
        load_id
    from {{ ref('stg_onepassword_events__item_usages') }}

),

onepassword_audit as (

    select
        'onepassword' as source,
        'audit_events' as source_table,
        tenant,
        event_uuid as event_id,
        occurred_at as event_at,
        event_date,
        case
            when object_type in ('user', 'account') then 'Account Change'
        end as ocsf_class,
        coalesce(actor_email, actor_uuid) as actor,
        action,
        'success' as outcome,
        coalesce(object_email, object_name, object_uuid) as target,
        session_ip as source_ip,
        raw_json,
        load_id
    from {{ ref('stg_onepassword_events__audit_events') }}

)

select * from trend
union all
select * from onepassword_signins
union all
select * from onepassword_item_usages
union all
select * from onepassword_audit
