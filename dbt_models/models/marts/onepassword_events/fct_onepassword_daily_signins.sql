-- Sign-in attempts by outcome category: one row per tenant, UTC day and category that occurred.

select
    tenant,
    event_date,
    category,
    count(*) as attempts,
    count(distinct user_uuid) as distinct_users

from {{ ref('int_onepassword_events__signin_attempts') }}
group by tenant, event_date, category
