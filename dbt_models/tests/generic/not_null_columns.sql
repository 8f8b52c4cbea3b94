{#
    None of the columns is NULL, checked in one query per model instead of one test per column
    (each test node costs a dbt build its own overhead). Fails with the offending rows, showing
    the listed columns so the NULL one is seen. Model-level test:

      data_tests:
        - not_null_columns:
            arguments:
              column_names: [tenant, event_id, observed_at]
#}
{% test not_null_columns(model, column_names) %}

select
    {{ column_names | join(',\n    ') }}
from {{ model }}
where {{ column_names | join(' is null\n   or ') }} is null

{% endtest %}
