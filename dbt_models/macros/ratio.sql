{#
    numerator / denominator as a floating-point number, NULL when the denominator is 0
    (or NULL). Every ratio in the marts goes through this one definition.

    dbt.type_float() is `float`, which DuckDB reads as a 4-byte REAL (0.33333334), so the
    DuckDB implementation asks for `double`; elsewhere (Postgres: double precision) the
    cross-database type is used.
#}
{% macro ratio(numerator, denominator) -%}
    {{ return(adapter.dispatch('ratio', 'posture')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__ratio(numerator, denominator) -%}
    (cast({{ numerator }} as {{ dbt.type_float() }}) / nullif({{ denominator }}, 0))
{%- endmacro %}

{% macro duckdb__ratio(numerator, denominator) -%}
    (cast({{ numerator }} as double) / nullif({{ denominator }}, 0))
{%- endmacro %}
