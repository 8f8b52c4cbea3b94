-- Cloud One audit events counted per tenant, UTC day and event type (types that did not occur
-- that day have no row).

select
    tenant,
    event_date,
    event_type,
    count(*) as events,
    count(distinct principal_urn) as distinct_principals,
    min(event_at) as first_event_at,
    max(event_at) as last_event_at

from {{ ref('int_trend_audit__audit_events') }}
group by tenant, event_date, event_type
