{#
  A raw table to select from (`from {{ source_or_empty(...) }} as source`), or none of its rows
  when that source was never loaded.

  An installation may load only some vendors; their tables do not exist until the first load.
  This is the source itself when it exists, not a query over it: DuckDB pushes a filter on a
  column the staging model computes (`observed_at >= ...`) down to the table's scan, where row
  groups outside it are skipped, through the model's own select but not through a `select *`
  beneath it. Otherwise it is a
  subquery of zero rows typed from the `data_type` of each column declared in the sources YAML,
  so every model still builds (empty) and lineage still names the source.
#}
{% macro source_or_empty(source_name, table_name) %}
    {%- set relation = source(source_name, table_name) -%}
    {%- if execute and load_relation(relation) is none -%}
        {%- set node = graph.sources.values()
            | selectattr('source_name', 'equalto', source_name)
            | selectattr('name', 'equalto', table_name)
            | first -%}
        (select
        {%- for column in node.columns.values() %}
            cast(null as {{ column.data_type }}) as {{ column.name }}{{ "," if not loop.last }}
        {%- endfor %}
        where 1 = 0)
    {%- else -%}
        {{ relation }}
    {%- endif -%}
{% endmacro %}
