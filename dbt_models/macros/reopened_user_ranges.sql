{#
  How an incremental build of int_keeper_rmd__user_history recomputes only recent history.

  Per tenant it recomputes from `from_day`: the last user-details snapshot day before the
  earliest day loaded since the model's newest observation (less the lookback), which no load
  has changed since. The ranges that reach `from_day` or later are reopened: the pre-hook moves
  them out of the model into the temporary table `reopened_user_ranges`, and the build computes
  them again from the snapshots of `from_day` on; a range it starts on `from_day` continues the
  reopened range that covered that day (same state, as that day's rows are unchanged).
#}

{# Per tenant with snapshots loaded since the model's newest observation: `from_day`. #}
{% macro user_history_recompute_from() -%}
    with

    changed as (

        select tenant, min(snapshot_date) as first_day
        from {{ ref('stg_keeper_rmd__users') }}
        where observed_at >= {{ incremental_lookback_start('last_observed_at') }}
        group by tenant

    )

    select changed.tenant, coalesce(max(days.snapshot_date), min(changed.first_day)) as from_day
    from changed
    left join {{ ref('int_keeper_rmd__snapshots') }} as days
        on days.tenant = changed.tenant
        and days.has_user_details
        and days.snapshot_date < changed.first_day
    group by changed.tenant
{%- endmacro %}

{# The pre-hook: move the ranges the build recomputes out of the model. #}
{% macro reopen_user_ranges() -%}
    {%- if is_incremental() -%}
        {#- A model built before it kept last_observed_at gets the column before any row is
            deleted (DuckDB refuses to add it later in the same transaction); it is then read
            again from the start (see incremental_lookback_start). -#}
        {%- if 'last_observed_at' not in adapter.get_columns_in_relation(this) | map(attribute='name') | list %}
        alter table {{ this }} add column last_observed_at {{ dbt.type_timestamp() }};
        {% endif %}
        create or replace temporary table reopened_user_ranges as
        select history.*
        from {{ this }} as history
        inner join ({{ user_history_recompute_from() }}) as recompute
            on history.tenant = recompute.tenant
            and history.last_seen_on >= recompute.from_day;

        delete from {{ this }} as history
        using reopened_user_ranges as reopened
        where reopened.tenant = history.tenant
            and reopened.user_email = history.user_email
            and reopened.valid_from = history.valid_from
    {%- endif -%}
{%- endmacro %}
