{#
  A time the vendor gave in UTC, as a plain TIMESTAMP holding UTC wall-clock time. dlt stores
  times as TIMESTAMP WITH TIME ZONE, which several BI drivers cannot read; staging models cast
  every time through here, so the marts carry only types every driver reads. The profile's
  session time zone is UTC, so the cast keeps the UTC time.
#}
{% macro utc_timestamp(column) -%}
    cast({{ column }} as {{ dbt.type_timestamp() }})
{%- endmacro %}
