-- Audit events by action and object type: one row per tenant, UTC day, action and object type
-- that occurred.

select
    tenant,
    event_date,
    action,
    coalesce(object_type, 'unknown') as object_type,
    count(*) as events,
    count(distinct actor_uuid) as distinct_actors

from {{ ref('stg_onepassword_events__audit_events') }}
group by tenant, event_date, action, coalesce(object_type, 'unknown')
