-- Who is behind the dormant_users and never_logged_in counts: one row per tenant, snapshot
-- day and user who has not logged in within the 30 days before the observation (dormant) or
-- has never logged in.

with

users_daily as (

    select * from {{ ref('int_keeper_rmd__users_daily') }}

)

select
    tenant,
    snapshot_date,
    user_email,
    last_logged_in,
    days_since_login,
    never_logged_in,
    is_dormant,
    has_records,
    observed_at

from users_daily
where is_dormant or never_logged_in
