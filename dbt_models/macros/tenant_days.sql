{#
  One row per tenant and UTC day from `first_day` to `last_day` of each row of `bounds` (a CTE
  or relation with tenant, first_day, last_day), as `tenant, event_date`. A calendar built from
  digits (0 to 99,999 days) rather than a platform-specific series function, so it stays
  portable; event sources use it so that a quiet day is a row of zeros.
#}
{% macro tenant_days(bounds) %}
    {%- set digits -%}
        (select 0 as d union all select 1 union all select 2 union all select 3
         union all select 4 union all select 5 union all select 6 union all select 7
         union all select 8 union all select 9)
    {%- endset -%}
    select
        bounds.tenant,
        cast({{ dbt.dateadd('day', 'day_numbers.day_number', 'bounds.first_day') }} as date)
            as event_date
    from {{ bounds }} as bounds
    inner join (
        select
            ones.d + 10 * tens.d + 100 * hundreds.d + 1000 * thousands.d
            + 10000 * ten_thousands.d as day_number
        from {{ digits }} as ones
        cross join {{ digits }} as tens
        cross join {{ digits }} as hundreds
        cross join {{ digits }} as thousands
        cross join {{ digits }} as ten_thousands
    ) as day_numbers
        on day_numbers.day_number
        <= {{ dbt.datediff('bounds.first_day', 'bounds.last_day', 'day') }}
{% endmacro %}
