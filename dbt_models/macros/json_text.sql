{#
  The text value of a top-level `key` of a JSON object held as text in `column` (NULL when the
  key is absent), for the few rules that look inside a vendor's undocumented JSON.
#}
{% macro json_text(column, key) -%}
    {{ return(adapter.dispatch('json_text', 'posture')(column, key)) }}
{%- endmacro %}

{% macro default__json_text(column, key) -%}
    json_extract_string({{ column }}, '$.{{ key }}')
{%- endmacro %}

{% macro postgres__json_text(column, key) -%}
    (cast({{ column }} as json) ->> '{{ key }}')
{%- endmacro %}
