{#
  The organisation of a tenant the configuration file does not name (and of every tenant when
  there is no configuration file).
#}
{% macro default_organisation() -%}
    'default'
{%- endmacro %}
