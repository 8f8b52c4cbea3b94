-- Cloud One API keys: who created each one and when, whether and by whom it was deleted.
-- Built from the audit events alone, so a key created before the first loaded event has no
-- creation (created_at NULL) and is not counted alive in fct_trend_daily_kpis.
-- Incremental: a build recomputes, from all their events, the keys that newly loaded events
-- name (a late event can change who created a key, or its name).
{{ config(
    materialized='incremental',
    unique_key=['tenant', 'api_key_id'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns'
) }}

with

all_key_events as (

    select
        tenant,
        api_key_id,
        api_key_name,
        event_id,
        event_at,
        observed_at,
        principal_urn,
        is_api_key_created,
        is_api_key_deleted,
        is_api_key_updated

    from {{ ref('int_trend_audit__audit_events') }}
    where api_key_id is not null

),

key_events as (

    select
        tenant,
        api_key_id,
        api_key_name,
        event_at,
        principal_urn,
        is_api_key_created,
        is_api_key_deleted,
        is_api_key_updated,
        row_number() over (
            partition by tenant, api_key_id, is_api_key_created, is_api_key_deleted
            order by event_at, event_id
        ) as nth_of_its_kind,
        row_number() over (
            partition by tenant, api_key_id
            order by event_at desc, event_id desc
        ) as nth_latest,
        observed_at

    from all_key_events
    {%- if is_incremental() %}
    where (tenant, api_key_id) in (
        select tenant, api_key_id from all_key_events
        where {{ newly_loaded(this_column='last_observed_at') }}
    )
    {%- endif %}

),

keys as (

    select
        tenant,
        api_key_id,
        max(case when nth_latest = 1 then api_key_name end) as api_key_name,
        max(case when is_api_key_created and nth_of_its_kind = 1 then event_at end) as created_at,
        max(case when is_api_key_created and nth_of_its_kind = 1 then principal_urn end)
            as created_by,
        max(case when is_api_key_deleted and nth_of_its_kind = 1 then event_at end) as deleted_at,
        max(case when is_api_key_deleted and nth_of_its_kind = 1 then principal_urn end)
            as deleted_by,
        max(case when is_api_key_updated then event_at end) as last_updated_at,
        cast(sum(case when is_api_key_updated then 1 else 0 end) as {{ dbt.type_bigint() }})
            as updates,
        max(observed_at) as last_observed_at

    from key_events
    group by tenant, api_key_id

)

select
    tenant,
    api_key_id,
    api_key_name,
    created_at,
    created_by,
    deleted_at,
    deleted_by,
    last_updated_at,
    updates,
    created_at is not null as is_creation_known,
    deleted_at is null as is_alive,
    last_observed_at

from keys
