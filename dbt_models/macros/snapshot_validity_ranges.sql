{#
    Turns daily snapshots into type-2 validity ranges: one row per run of consecutive snapshots
    in which an entity was listed with the same state.

    rows           name of a relation or CTE with `tenant`, `snapshot_date`, the key columns
                   and the state columns (one row per tenant, day and key)
    snapshot_days  name of a relation or CTE with `tenant`, `snapshot_date`: the days on which
                   the endpoint was snapshotted (the calendar a run must be consecutive in)
    key_columns    the entity's key within a tenant, e.g. ['user_email']
    state_columns  the columns whose change starts a new range, e.g. ['status']

    A run ends when a state column changes (NULL counts as a value) or when the entity is
    missing from a snapshot day. Output: tenant, the key columns, the state columns,
    valid_from (first day of the run), valid_to (the next snapshot day after the run, exclusive;
    NULL while the run is still current), is_current, last_seen_on, snapshots_in_range.

    "What was true on day D": valid_from <= D and (valid_to > D or valid_to is null).

    The macro renders one `with ... select` statement (use it as the body of a CTE); its own
    CTEs are numbered_days, sequenced, run_starts, runs and run_bounds, so the CTEs passed in
    must be named otherwise.
#}
{% macro snapshot_validity_ranges(rows, snapshot_days, key_columns, state_columns) %}
    {%- set entity = (['tenant'] + key_columns) -%}
    {%- set entity_of_row = [] -%}
    {%- for column in entity -%}{%- do entity_of_row.append('entity_rows.' ~ column) -%}{%- endfor %}

    with

    numbered_days as (

        select
            tenant,
            snapshot_date,
            row_number() over (partition by tenant order by snapshot_date) as day_number

        from {{ snapshot_days }}

    ),

    sequenced as (

        select
            entity_rows.tenant,
            {%- for column in key_columns + state_columns %}
            entity_rows.{{ column }},
            {%- endfor %}
            entity_rows.snapshot_date,
            numbered_days.day_number,
            lag(numbered_days.day_number) over (
                partition by {{ entity_of_row | join(', ') }}
                order by entity_rows.snapshot_date
            ) as previous_day_number
            {%- for column in state_columns %},
            lag(entity_rows.{{ column }}) over (
                partition by {{ entity_of_row | join(', ') }}
                order by entity_rows.snapshot_date
            ) as previous_{{ column }}
            {%- endfor %}

        from {{ rows }} as entity_rows
        inner join numbered_days
            on entity_rows.tenant = numbered_days.tenant
            and entity_rows.snapshot_date = numbered_days.snapshot_date

    ),

    run_starts as (

        select
            *,
            case
                when previous_day_number is null then 1
                when previous_day_number <> day_number - 1 then 1
                {%- for column in state_columns %}
                when previous_{{ column }} is distinct from {{ column }} then 1
                {%- endfor %}
                else 0
            end as is_run_start

        from sequenced

    ),

    runs as (

        select
            *,
            sum(is_run_start) over (
                partition by {{ entity | join(', ') }}
                order by snapshot_date
                rows between unbounded preceding and current row
            ) as run_number

        from run_starts

    ),

    run_bounds as (

        select
            {{ entity | join(',\n            ') }},
            run_number,
            min(snapshot_date) as valid_from,
            max(snapshot_date) as last_seen_on,
            max(day_number) as last_day_number,
            count(*) as snapshots_in_range

        from runs
        group by {{ entity | join(', ') }}, run_number

    )

    select
        {%- for column in entity %}
        run_bounds.{{ column }},
        {%- endfor %}
        {%- for column in state_columns %}
        first_row.{{ column }},
        {%- endfor %}
        run_bounds.valid_from,
        next_day.snapshot_date as valid_to,
        next_day.snapshot_date is null as is_current,
        run_bounds.last_seen_on,
        run_bounds.snapshots_in_range

    from run_bounds
    inner join runs as first_row
        on run_bounds.run_number = first_row.run_number
        {%- for column in entity %}
        and run_bounds.{{ column }} = first_row.{{ column }}
        {%- endfor %}
        and first_row.is_run_start = 1
    left join numbered_days as next_day
        on run_bounds.tenant = next_day.tenant
        and next_day.day_number = run_bounds.last_day_number + 1

{% endmacro %}
