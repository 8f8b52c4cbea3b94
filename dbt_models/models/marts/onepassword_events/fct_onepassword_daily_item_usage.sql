-- Item usage by vault and action: one row per tenant, UTC day, vault and action that occurred.

select
    tenant,
    event_date,
    coalesce(vault_uuid, 'unknown') as vault_uuid,
    action,
    count(*) as usages,
    count(distinct user_uuid) as distinct_users,
    count(distinct item_uuid) as distinct_items

from {{ ref('stg_onepassword_events__item_usages') }}
group by tenant, event_date, coalesce(vault_uuid, 'unknown'), action
