-- Each user on each snapshot day with their login and vault flags. "Recent" means a login
-- within the 30 days before the moment the details were observed, as the API's
-- users_logged_recent counts it.

with

users as (

    select * from {{ ref('stg_keeper_rmd__users') }}

),

with_cutoff as (

    select
        tenant,
        snapshot_date,
        user_email,
        has_records,
        last_logged_in,
        observed_at,
        {{ dbt.dateadd('day', -30, 'observed_at') }} as recent_login_cutoff

    from users

)

select
    *,
    case
        when last_logged_in >= recent_login_cutoff then true else false
    end as is_recent,
    case
        when last_logged_in < recent_login_cutoff then true else false
    end as is_dormant,
    case
        when last_logged_in is null then true else false
    end as never_logged_in,
    case
        when last_logged_in is not null
            then {{ dbt.datediff('last_logged_in', 'observed_at', 'day') }}
    end as days_since_login

from with_cutoff
