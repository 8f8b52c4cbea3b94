{#
  Which rows a build's data tests read, so an hourly build's tests cost what it loaded rather
  than all history. dbt_project.yml sets every data test's `where` to the placeholder
  `__rows_this_build_could_change__`; `get_where_subquery` (dbt's hook for `where`) puts here:

  - a full build (the first one, or `--full-refresh`): no filter, all history is tested;
  - a model with `observed_at` (staging, event and user-day models): the rows loaded since the
    newest `observed_at` the model held at the end of the last build that passed, less
    `var('load_lookback_days')`. The on-run-end hook keeps that mark only when nothing in the
    build failed, so every row a later load brings (a vendor clock behind ours by less than the
    lookback) is tested, however many loads or failed builds came in between: a failing row keeps
    failing the builds until it is fixed. Uniqueness tests read every row whose key is among
    those rows' keys, so a new row repeating an old row's key still fails; relationships tests
    read those child rows against all parents (the `to` model is never filtered);
  - a model without `observed_at` (daily aggregates, dimensions, Keeper's validity ranges, the
    seed): all rows, since a new load can change any of them (a day recomputed, a range closed)
    and they are few, one per tenant and day or less.

  An old row changed in place outside a load (a repair by hand) is not read by hourly builds;
  `posture transform --full-refresh` tests it.
#}

{# The table holding each model's newest `observed_at` at the end of the last build that passed. #}
{% macro tested_through_relation() -%}
    {{ return(api.Relation.create(
        database=target.database, schema=target.schema, identifier='data_tests_passed_through'
    )) }}
{%- endmacro %}

{# dbt's `where` hook for data tests, with the placeholder above resolved for `relation`. #}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') or '' -%}
    {%- set placeholder = '__rows_this_build_could_change__' -%}
    {%- if placeholder in where -%}
        {%- set where = where | replace(placeholder, rows_this_build_could_change(relation)) -%}
    {%- endif -%}
    {#- `offset 0` keeps DuckDB from merging this filter into the test's own, where it no
        longer reaches the table scan and every row of every column is read. -#}
    {{ return(relation if where in ('', '1 = 1') else
        '(select * from ' ~ relation ~ ' where ' ~ where ~ ' offset 0) dbt_subquery') }}
{%- endmacro %}

{# The filter on `relation` keeping the rows this test reads ('1 = 1': all rows). #}
{% macro rows_this_build_could_change(relation) -%}
    {%- if not execute or flags.FULL_REFRESH -%}
        {{ return('1 = 1') }}
    {%- endif -%}
    {%- set newest = tested_through_marks().get(relation.schema ~ '.' ~ relation.identifier) -%}
    {%- if newest is none -%}
        {{ return('1 = 1') }}
    {%- endif -%}
    {%- set newly_loaded = 'observed_at >= ' ~ lookback_before(newest) -%}
    {%- set test = model.get('test_metadata') or {} -%}
    {%- set keys = test.get('kwargs', {}).get('combination_of_columns')
        if test.get('name') == 'unique_combination'
        else [test.get('kwargs', {}).get('column_name')] if test.get('name') == 'unique'
        else none -%}
    {%- if keys -%}
        {{ return('(' ~ keys | join(', ') ~ ') in (select ' ~ keys | join(', ') ~ ' from '
            ~ relation ~ ' where ' ~ newly_loaded ~ ')') }}
    {%- endif -%}
    {{ return(newly_loaded) }}
{%- endmacro %}

{# Each model's mark by relation name, read in one query by the build's first data test and kept
   for the others in `graph`, the one object all the nodes of a build share (the marks change
   only after the build, in the on-run-end hook). #}
{% macro tested_through_marks() -%}
    {%- set key = 'posture_tested_through_' ~ invocation_id -%}
    {%- if key not in graph -%}
        {%- set query -%}
            select relation_name, max(newest_observed_at) from {{ tested_through_relation() }}
            group by relation_name
        {%- endset -%}
        {%- set marks = {} -%}
        {%- for row in run_query(query).rows -%}
            {%- do marks.update({row[0]: row[1]}) -%}
        {%- endfor -%}
        {%- do graph.update({key: marks}) -%}
    {%- endif -%}
    {{ return(graph[key]) }}
{%- endmacro %}

{# Before a build (the project's on-run-start hook): the table of marks, empty the first time. #}
{% macro create_tested_through() -%}
    {%- if execute -%}
        {%- do run_query(
            'create table if not exists ' ~ tested_through_relation()
            ~ ' (relation_name varchar not null, newest_observed_at ' ~ dbt.type_timestamp() ~ ')'
        ) -%}
        {%- do adapter.commit() -%}
    {%- endif -%}
{%- endmacro %}

{# After a build in which nothing failed (the on-run-end hook): each built model's newest
   `observed_at`, kept as the point from which the next build tests. #}
{% macro record_tested_through(results) -%}
    {%- if not execute or results | selectattr('status', 'in', ['error', 'fail', 'skipped']) | list -%}
        {{ return('') }}
    {%- endif -%}
    {%- set relations = [] -%}
    {%- for result in results if result.node.resource_type == 'model' -%}
        {%- set relation = adapter.get_relation(
            result.node.database, result.node.schema, result.node.alias
        ) -%}
        {%- if relation and 'observed_at' in adapter.get_columns_in_relation(relation)
                | map(attribute='name') | list -%}
            {%- do relations.append(relation) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if relations -%}
        {%- set marks = tested_through_relation() -%}
        {%- set record -%}
            delete from {{ marks }} where relation_name in (
            {%- for relation in relations -%}
                '{{ relation.schema }}.{{ relation.identifier }}'{{ ', ' if not loop.last }}
            {%- endfor -%}
            );
            insert into {{ marks }}
            {%- for relation in relations %}
            select '{{ relation.schema }}.{{ relation.identifier }}', max(observed_at) from {{ relation }}
            {{ 'union all' if not loop.last }}
            {%- endfor %}
        {%- endset -%}
        {#- The hook's connection has a transaction open by now, which dbt would roll back. -#}
        {%- do run_query(record) -%}
        {%- do adapter.commit() -%}
    {%- endif -%}
{%- endmacro %}
