{#
  True when an event's time cannot be a real time of that event: before 2000-01-01 (no tenant
  of these vendors has events that old) or more than a day after the load that observed it
  (a vendor clock or a bad record). Such events are kept and flagged; the daily grain leaves
  them out, so one event in year 1 or 9999 does not stretch a tenant's calendar over millennia.
#}
{% macro time_out_of_range(event_at, observed_at) -%}
    ({{ event_at }} < cast('2000-01-01' as {{ dbt.type_timestamp() }})
        or {{ event_at }} > {{ dbt.dateadd('day', 1, observed_at) }})
{%- endmacro %}
