{#
    The column equals another column of the same row; a NULL on one side only is a
    difference. Used for cross-checks between two ways of counting the same thing, e.g.
    the API's users_logged_recent against the count derived from the user details.

      - name: users_logged_recent
        data_tests:
          - equal_to_column:
              arguments:
                other_column: users_logged_recent_from_details
#}
{% test equal_to_column(model, column_name, other_column) %}

select *
from {{ model }}
where {{ column_name }} is distinct from {{ other_column }}

{% endtest %}
