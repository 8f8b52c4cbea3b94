-- Who each vendor's user is, by e-mail: one row per source, tenant and the vendor's own id of a
-- person. Keeper names users by e-mail; 1Password gives each user's e-mail beside their uuid;
-- Trend's principals are user ids, whose e-mail only the audit log's user events carry (in
-- `details`). E-mails are lower-cased and trimmed, the form people are matched by.

with

keeper as (

    select
        'keeper' as source,
        tenant,
        user_email as vendor_user_id,
        lower(trim(user_email)) as person_email,
        cast(null as {{ dbt.type_string() }}) as person_name,
        snapshot_date as seen_on
    from {{ ref('stg_keeper_rmd__users') }}

),

onepassword as (

    select tenant, user_uuid, user_email, user_name, event_date
    from {{ ref('stg_onepassword_events__signin_attempts') }}
    union all
    select tenant, user_uuid, user_email, user_name, event_date
    from {{ ref('stg_onepassword_events__item_usages') }}
    union all
    select tenant, actor_uuid, actor_email, actor_name, event_date
    from {{ ref('stg_onepassword_events__audit_events') }}

),

onepassword_people as (

    select
        'onepassword' as source,
        tenant,
        coalesce(user_uuid, user_email) as vendor_user_id,
        lower(trim(user_email)) as person_email,
        user_name as person_name,
        event_date as seen_on
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
        event_date as seen_on
    from {{ ref('stg_trend_audit__audit_logs') }}
    where event_type like 'audit.user%'

),

identities as (

    select * from keeper
    union all
    select * from onepassword_people
    union all
    select * from trend_people where vendor_user_id is not null and person_email like '%@%'

)

select
    source,
    tenant,
    vendor_user_id,
    max(person_email) as person_email,
    max(person_name) as person_name,
    min(seen_on) as first_seen_on,
    max(seen_on) as last_seen_on

from identities
group by source, tenant, vendor_user_id
