{#
  A time the vendor gave in UTC, as a plain TIMESTAMP holding UTC wall-clock time. dlt stores
  times as TIMESTAMP WITH TIME ZONE, which several BI drivers cannot read; staging models cast
  every time through here, so the marts carry only types every driver reads. The time is built
  from its microseconds since the epoch rather than cast: a cast goes through the time zone
  library for every row, which made each incremental build's filter on `observed_at` cost as
  much as reading all history; this keeps UTC whatever the session's time zone.
#}
{% macro utc_timestamp(column) -%}
    make_timestamp(epoch_us({{ column }}))
{%- endmacro %}
