-- The events an auditor asks about first, one row each: who turned MFA off for whom, who
-- suspended whom, who exported a vault (audit events) or an item (item usages), and when.
-- The classification is here and only here; the daily KPIs count from this table.
-- Incremental: a build reads only newly loaded events (see fct_security_events).
{{ config(
    materialized='incremental',
    unique_key=['source_table', 'tenant', 'event_uuid'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns'
) }}

with

audit as (

    select
        tenant,
        event_uuid,
        case
            when action = 'disblmfa' then 'mfa_disabled'
            when action = 'suspend' then 'user_suspended'
            when action = 'export' then 'vault_export'
        end as sensitive_action,
        'audit_events' as source_table,
        occurred_at,
        event_date,
        is_time_out_of_range,
        actor_uuid,
        actor_name,
        actor_email,
        object_type as target_type,
        object_uuid as target_uuid,
        object_name as target_name,
        object_email as target_email,
        case when object_type = 'vault' then object_uuid end as vault_uuid,
        cast(null as {{ dbt.type_string() }}) as item_uuid,
        session_ip as ip_address,
        location_country,
        observed_at,
        load_id

    from {{ ref('stg_onepassword_events__audit_events') }}
    where action in ('disblmfa', 'suspend', 'export')
        and {{ newly_loaded("source_table = 'audit_events'") }}

),

item_exports as (

    select
        tenant,
        event_uuid,
        'item_export' as sensitive_action,
        'item_usages' as source_table,
        occurred_at,
        event_date,
        is_time_out_of_range,
        user_uuid as actor_uuid,
        user_name as actor_name,
        user_email as actor_email,
        'item' as target_type,
        item_uuid as target_uuid,
        cast(null as {{ dbt.type_string() }}) as target_name,
        cast(null as {{ dbt.type_string() }}) as target_email,
        vault_uuid,
        item_uuid,
        client_ip_address as ip_address,
        location_country,
        observed_at,
        load_id

    from {{ ref('stg_onepassword_events__item_usages') }}
    where action = 'export'
        and {{ newly_loaded("source_table = 'item_usages'") }}

)

select * from audit
union all
select * from item_exports
