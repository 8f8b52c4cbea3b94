-- Sign-in attempts with their outcome: the one place that says which categories signed in.
-- firewall_reported_success went through (the firewall only reported it); every other
-- category, a new one included, did not.

select
    *,
    category in ('success', 'firewall_reported_success') as is_success

from {{ ref('stg_onepassword_events__signin_attempts') }}
