{#
  The rows of a raw table, or none when that source was never loaded.

  An installation may load only some vendors; their tables do not exist until the first load.
  This selects from the source when it exists and otherwise yields zero rows typed from the
  `data_type` of each column declared in the sources YAML, so every model still builds (empty)
  and lineage still names the source.
#}
{% macro source_or_empty(source_name, table_name) %}
    {%- set relation = source(source_name, table_name) -%}
    {%- if execute and load_relation(relation) is none -%}
        {%- set node = graph.sources.values()
            | selectattr('source_name', 'equalto', source_name)
            | selectattr('name', 'equalto', table_name)
            | first -%}
        select
        {%- for column in node.columns.values() %}
            cast(null as {{ column.data_type }}) as {{ column.name }}{{ "," if not loop.last }}
        {%- endfor %}
        where 1 = 0
    {%- else -%}
        select * from {{ relation }}
    {%- endif -%}
{% endmacro %}
