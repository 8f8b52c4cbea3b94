-- Who each vendor's user is, by e-mail: one row per source, tenant and the vendor's own id of a
-- person. Keeper names users by e-mail; 1Password gives each user's e-mail beside their uuid;
-- Trend's principals are user ids, whose e-mail only the audit log's user events carry (in
-- `details`). E-mails are lower-cased and trimmed, the form people are matched by.
-- Incremental: a build folds the events each source newly loaded (since its newest row here,
-- as each vendor has its own clock) into the rows of the users they name (every column is a
-- greatest or least value). A Keeper snapshot retaken the same day can drop
-- a user, so a tenant with newly loaded snapshots has its Keeper users rebuilt whole: the
-- pre-hook deletes them first.
{{ config(
    materialized='incremental',
    unique_key=['source', 'tenant', 'vendor_user_id'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    pre_hook="{% if is_incremental() %}delete from {{ this }} where source = 'keeper' and tenant in ({{ keeper_tenants_loaded() }}){% endif %}"
) }}

{%- set onepassword_loaded = newly_loaded("source = 'onepassword'", 'last_observed_at') %}

with

keeper as (

    select
        'keeper' as source,
        tenant,
        user_email as vendor_user_id,
        lower(trim(user_email)) as person_email,
        cast(null as {{ dbt.type_string() }}) as person_name,
        snapshot_date as seen_on,
        observed_at
    from {{ ref('stg_keeper_rmd__users') }}
    {%- if is_incremental() %}
    where tenant in ({{ keeper_tenants_loaded() }})
    {%- endif %}

),

onepassword as (

    select tenant, user_uuid, user_email, user_name, event_date, observed_at
    from {{ ref('stg_onepassword_events__signin_attempts') }}
    where {{ onepassword_loaded }}
    union all
    select tenant, user_uuid, user_email, user_name, event_date, observed_at
    from {{ ref('stg_onepassword_events__item_usages') }}
    where {{ onepassword_loaded }}
    union all
    select tenant, actor_uuid, actor_email, actor_name, event_date, observed_at
    from {{ ref('stg_onepassword_events__audit_events') }}
    where {{ onepassword_loaded }}

),

onepassword_people as (

    select
        'onepassword' as source,
        tenant,
        coalesce(user_uuid, user_email) as vendor_user_id,
        lower(trim(user_email)) as person_email,
        user_name as person_name,
        event_date as seen_on,
        observed_at
    from onepassword
    where user_email like '%@%'

),

trend_people as (

    select
        'trend' as source,
        tenant,
        coalesce(
            {{ json_text('details_json', 'userID') }}, {{ json_text('details_json', 'userId') }}
        ) as vendor_user_id,
        lower(trim({{ json_text('details_json', 'email') }})) as person_email,
        cast(null as {{ dbt.type_string() }}) as person_name,
        event_date as seen_on,
        observed_at
    from {{ ref('stg_trend_audit__audit_logs') }}
    where event_type like 'audit.user%'
        and {{ newly_loaded("source = 'trend'", 'last_observed_at') }}

),

sightings as (

    select * from keeper
    union all
    select * from onepassword_people
    union all
    select * from trend_people where vendor_user_id is not null and person_email like '%@%'

),

identities as (

    select
        source,
        tenant,
        vendor_user_id,
        person_email,
        person_name,
        seen_on as first_seen_on,
        seen_on as last_seen_on,
        observed_at as last_observed_at
    from sightings

    {%- if is_incremental() %}
    union all
    select
        source,
        tenant,
        vendor_user_id,
        person_email,
        person_name,
        first_seen_on,
        last_seen_on,
        last_observed_at
    from {{ this }}
    where source <> 'keeper'
        and (source, tenant, vendor_user_id) in (
            select source, tenant, vendor_user_id from sightings
        )
    {%- endif %}

)

select
    source,
    tenant,
    vendor_user_id,
    max(person_email) as person_email,
    max(person_name) as person_name,
    min(first_seen_on) as first_seen_on,
    max(last_seen_on) as last_seen_on,
    max(last_observed_at) as last_observed_at

from identities
group by source, tenant, vendor_user_id
