-- Who is behind the dormant_users and never_logged_in counts: one row per tenant, snapshot
-- day and user who has not logged in within the 30 days before the observation (dormant) or
-- has never logged in.
-- Incremental: a build recomputes the snapshot days loaded since its newest observation (less
-- the lookback), each day whole: the hook first deletes those days, so a snapshot retaken the
-- same day replaces its day even when nobody in it is dormant any more.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{% if is_incremental() %}delete from {{ this }} where {{ changed_snapshot_days([ref('int_keeper_rmd__users_daily')]) }}{% endif %}"
) }}

with

users_daily as (

    select * from {{ ref('int_keeper_rmd__users_daily') }}
    where {{ changed_snapshot_days([ref('int_keeper_rmd__users_daily')]) }}

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
