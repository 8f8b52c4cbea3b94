{#
    The combination of columns is unique: no two rows share the same values in all of them
    (the compound key of a model, e.g. tenant + snapshot_date + benchmark_id).
    Model-level test:

      data_tests:
        - unique_combination:
            arguments:
              combination_of_columns: [tenant, snapshot_date]
#}
{% test unique_combination(model, combination_of_columns) %}

select
    {{ combination_of_columns | join(',\n    ') }},
    count(*) as rows_with_this_key
from {{ model }}
group by
    {{ combination_of_columns | join(',\n    ') }}
having count(*) > 1

{% endtest %}
