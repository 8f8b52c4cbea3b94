with

renamed as (

    select

        ----------  ids
        cast(_dlt_id as {{ dbt.type_string() }}) as row_id,
        cast(tenant as {{ dbt.type_string() }}) as tenant,
        cast(snapshot_date as date) as snapshot_date,
        cast(audit_event_type as {{ dbt.type_string() }}) as requested_event_type,
        cast(event as {{ dbt.type_string() }}) as event_type,

        ---------- numerics (trailing 30 days, and the 30 days before)
        cast(event_occurrences as {{ dbt.type_bigint() }}) as occurrences_30d,
        cast(unique_users as {{ dbt.type_bigint() }}) as unique_users_30d,
        cast(last_events as {{ dbt.type_bigint() }}) as occurrences_prev_30d,
        cast(last_users as {{ dbt.type_bigint() }}) as unique_users_prev_30d,

        ---------- timestamps
        {{ utc_timestamp('observed_at') }} as observed_at,

        ---------- lineage
        cast(_dlt_load_id as {{ dbt.type_string() }}) as load_id

    from {{ source_or_empty('keeper_rmd', 'security_alerts_detail') }} as source

)

select * from renamed
