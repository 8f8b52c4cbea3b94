{#
  What an incremental build reads: the rows loaded since the model's newest observation, less
  `var('load_lookback_days')`. New means newly loaded (a later load, whatever the event's own
  time), so an event a vendor makes visible late is read by the build after the load that brings
  it; the lookback covers loads whose vendor clock runs behind the model's newest observation.
  The bounds are read before the model's SQL runs and written into it as literals, so the
  engine skips the row groups that lie outside them.
#}

{# The timestamp from which rows count as newly loaded (SQL literal), for an incremental build
   of `this`: its newest `observed_column` among rows matching `this_filter`, less the
   lookback. #}
{% macro incremental_lookback_start(observed_column='observed_at', this_filter='1 = 1') -%}
    {%- set query -%}
        select max({{ observed_column }}) from {{ this }} where {{ this_filter }}
    {%- endset -%}
    {#- A model made before it kept `observed_column` is read again from the start. -#}
    {%- set kept = execute and observed_column in adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
    {%- set newest = run_query(query).columns[0].values()[0] if kept else none -%}
    {%- if newest is none -%}
        cast('1900-01-01' as {{ dbt.type_timestamp() }})
    {%- else -%}
        {{ lookback_before(newest) }}
    {%- endif -%}
{%- endmacro %}

{# The timestamp `var('load_lookback_days')` before `newest` (a datetime), as a SQL literal. #}
{% macro lookback_before(newest) -%}
    {{ dbt.dateadd(
        'day',
        -var('load_lookback_days'),
        "cast('" ~ newest.strftime('%Y-%m-%d %H:%M:%S.%f') ~ "' as " ~ dbt.type_timestamp() ~ ")"
    ) }}
{%- endmacro %}

{# A filter on `observed_at` keeping the rows an incremental build of `this` reads (all rows in a
   full build): those observed since the newest `this_column` of `this` among rows matching
   `this_filter`, less the lookback. #}
{% macro newly_loaded(this_filter='1 = 1', this_column='observed_at') -%}
    {%- if is_incremental() -%}
        observed_at >= {{ incremental_lookback_start(this_column, this_filter) }}
    {%- else -%}
        1 = 1
    {%- endif -%}
{%- endmacro %}

{# A filter on `event_date` keeping the days a build of a daily model recomputes: every day in a
   full build; in an incremental one, from the earliest day of an event (in range) newly loaded
   into any of `event_relations` (each with event_date, observed_at and is_time_out_of_range) to
   the end, or no day when nothing was loaded. `this` keeps the days' newest observation in
   `last_observed_at`. #}
{% macro changed_days(event_relations) -%}
    {%- if not is_incremental() -%}
        1 = 1
    {%- else -%}
        {%- set since = incremental_lookback_start('last_observed_at') -%}
        {%- set query -%}
            {#- Out-of-range events are left out in the aggregate: beside the filter on
                observed_at, DuckDB would no longer push that filter down to the scans. #}
            select min(event_date) from (
            {%- for relation in event_relations %}
                select min(case when not is_time_out_of_range then event_date end) as event_date
                from {{ relation }}
                where observed_at >= {{ since }}
                {{ "union all" if not loop.last }}
            {%- endfor %}
            ) as changed
        {%- endset -%}
        {%- set first_day = run_query(query).columns[0].values()[0] if execute else none -%}
        {%- if first_day is none -%}
            1 = 0
        {%- else -%}
            event_date >= cast('{{ first_day }}' as date)
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{# A filter on `snapshot_date` keeping the Keeper snapshot days a build recomputes: every day in a
   full build; in an incremental one, from the earliest day of a row of any of `relations` (each
   with snapshot_date and observed_at) observed since `this`'s newest
   `observed_column` less the lookback, or no day when nothing was loaded. A snapshot retaken
   the same day is observed again, so its day is recomputed whole. #}
{% macro changed_snapshot_days(relations, observed_column='observed_at') -%}
    {%- if not is_incremental() -%}
        1 = 1
    {%- else -%}
        {%- set since = incremental_lookback_start(observed_column) -%}
        {%- set query -%}
            select min(snapshot_date) from (
            {%- for relation in relations %}
                select min(snapshot_date) as snapshot_date from {{ relation }}
                where observed_at >= {{ since }}
                {{ "union all" if not loop.last }}
            {%- endfor %}
            ) as changed
        {%- endset -%}
        {%- set first_day = run_query(query).columns[0].values()[0] if execute else none -%}
        {%- if first_day is none -%}
            1 = 0
        {%- else -%}
            snapshot_date >= cast('{{ first_day }}' as date)
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{# The Keeper tenants with user-details snapshots newly loaded since the newest
   `last_observed_at` of `this`'s Keeper rows (less the lookback), as a subquery. #}
{% macro keeper_tenants_loaded() -%}
    select distinct tenant from {{ ref('stg_keeper_rmd__users') }}
    where {{ newly_loaded("source = 'keeper'", 'last_observed_at') }}
{%- endmacro %}
