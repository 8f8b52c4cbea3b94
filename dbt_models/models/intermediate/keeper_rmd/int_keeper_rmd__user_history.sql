-- A table, not a view: it spans every user-day snapshot and its tests would recompute it.
{{ config(materialized='table') }}

-- Type-2 history of each user's state, derived from the daily snapshots: one row per run of
-- consecutive user-details snapshots in which the user was listed with the same
-- (has_records, last_logged_in). A run ends when that state changes or when the user is
-- missing from a snapshot (removed from the enterprise). See macros/snapshot_validity_ranges.sql.
--
-- "What was true on day D":
--   where valid_from <= D and (valid_to > D or valid_to is null)

with

users as (

    select tenant, snapshot_date, user_email, has_records, last_logged_in
    from {{ ref('stg_keeper_rmd__users') }}

),

-- The days on which the user-details endpoint was snapshotted: a day on which only another
-- endpoint loaded does not end anyone's range.
user_detail_days as (

    select tenant, snapshot_date
    from {{ ref('int_keeper_rmd__snapshots') }}
    where has_user_details

),

ranges as (

    {{ snapshot_validity_ranges(
        rows='users',
        snapshot_days='user_detail_days',
        key_columns=['user_email'],
        state_columns=['has_records', 'last_logged_in']
    ) }}

)

select
    tenant,
    user_email,
    has_records,
    last_logged_in,
    valid_from,
    valid_to,
    is_current,
    last_seen_on,
    snapshots_in_range

from ranges
