-- Type-2 history of each user's state, derived from the daily snapshots: one row per run of
-- consecutive user-details snapshots in which the user was listed with the same
-- (has_records, last_logged_in). A run ends when that state changes or when the user is
-- missing from a snapshot (removed from the enterprise). See macros/snapshot_validity_ranges.sql.
--
-- "What was true on day D":
--   where valid_from <= D and (valid_to > D or valid_to is null)
--
-- Incremental: a build recomputes only the ranges that reach the days loaded since its newest
-- observation (less the lookback), see macros/reopened_user_ranges.sql; a snapshot retaken the
-- same day replaces that day.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ reopen_user_ranges() }}"
) }}

with

{% if is_incremental() %}
recompute as (

    {{ user_history_recompute_from() }}

),
{% endif %}

users as (

    select users.tenant, users.snapshot_date, users.user_email, users.has_records,
        users.last_logged_in, users.observed_at
    from {{ ref('stg_keeper_rmd__users') }} as users
    {% if is_incremental() %}
    inner join recompute
        on users.tenant = recompute.tenant
        and users.snapshot_date >= recompute.from_day
    {% endif %}

),

-- The days on which the user-details endpoint was snapshotted: a day on which only another
-- endpoint loaded does not end anyone's range. Numbered over all history, to count the
-- snapshots of a reopened range before the days recomputed.
all_user_detail_days as (

    select
        tenant,
        snapshot_date,
        row_number() over (partition by tenant order by snapshot_date) as day_number
    from {{ ref('int_keeper_rmd__snapshots') }}
    where has_user_details

),

user_detail_days as (

    select days.tenant, days.snapshot_date
    from all_user_detail_days as days
    {% if is_incremental() %}
    inner join recompute
        on days.tenant = recompute.tenant
        and days.snapshot_date >= recompute.from_day
    {% endif %}

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
    ranges.tenant,
    ranges.user_email,
    ranges.has_records,
    ranges.last_logged_in,
    {% if is_incremental() %}
    coalesce(reopened.valid_from, ranges.valid_from) as valid_from,
    {% else %}
    ranges.valid_from,
    {% endif %}
    ranges.valid_to,
    ranges.is_current,
    ranges.last_seen_on,
    {% if is_incremental() %}
    ranges.snapshots_in_range
        + coalesce(recompute_start.day_number - reopened_start.day_number, 0)
        as snapshots_in_range,
    {% else %}
    ranges.snapshots_in_range,
    {% endif %}
    last_seen.observed_at as last_observed_at

from ranges
inner join users as last_seen
    on ranges.tenant = last_seen.tenant
    and ranges.user_email = last_seen.user_email
    and ranges.last_seen_on = last_seen.snapshot_date
{% if is_incremental() %}
inner join recompute
    on ranges.tenant = recompute.tenant
left join reopened_user_ranges as reopened
    on ranges.tenant = reopened.tenant
    and ranges.user_email = reopened.user_email
    and ranges.valid_from = recompute.from_day
    and reopened.valid_from < recompute.from_day
    and reopened.last_seen_on >= recompute.from_day
left join all_user_detail_days as reopened_start
    on reopened.tenant = reopened_start.tenant
    and reopened.valid_from = reopened_start.snapshot_date
left join all_user_detail_days as recompute_start
    on ranges.tenant = recompute_start.tenant
    and recompute.from_day = recompute_start.snapshot_date
{% endif %}
