-- Keeper alert trends: one row per tenant, snapshot day and audit event type, with the trailing
-- 30 days against the 30 days before, and whether the event type is new for the tenant.

with

summaries as (

    select * from {{ ref('stg_keeper_rmd__alert_summaries') }}

),

snapshots as (

    select tenant, snapshot_date, is_first_snapshot
    from {{ ref('int_keeper_rmd__snapshots') }}

),

first_seen as (

    select tenant, event_type, min(snapshot_date) as first_seen_on
    from summaries
    group by tenant, event_type

)

select
    summaries.tenant,
    summaries.snapshot_date,
    summaries.event_type,
    summaries.occurrences_30d,
    summaries.unique_users_30d,
    summaries.occurrences_prev_30d,
    summaries.unique_users_prev_30d,
    summaries.occurrences_30d - summaries.occurrences_prev_30d as occurrences_change,
    100 * {{ ratio(
        'summaries.occurrences_30d - summaries.occurrences_prev_30d',
        'summaries.occurrences_prev_30d'
    ) }} as occurrences_change_pct,
    first_seen.first_seen_on,
    -- On the tenant's first snapshot every event type is first seen; that is not "new".
    case
        when summaries.snapshot_date = first_seen.first_seen_on
            and not snapshots.is_first_snapshot
            then true
        else false
    end as is_new_event_type

from summaries
inner join first_seen
    on summaries.tenant = first_seen.tenant
    and summaries.event_type = first_seen.event_type
inner join snapshots
    on summaries.tenant = snapshots.tenant
    and summaries.snapshot_date = snapshots.snapshot_date
