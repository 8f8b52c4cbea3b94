with

renamed as (

    select

        ----------  keys
        cast(tenant as {{ dbt.type_string() }}) as tenant,
        cast(id as {{ dbt.type_string() }}) as event_id,

        ---------- the event
        cast(type as {{ dbt.type_string() }}) as event_type,
        cast(description as {{ dbt.type_string() }}) as event_description,
        cast(account_id as {{ dbt.type_string() }}) as account_id,

        ---------- who acted
        cast(principal_urn as {{ dbt.type_string() }}) as principal_urn,

        ---------- as sent (JSON text)
        cast(details as {{ dbt.type_string() }}) as details_json,
        cast(raw as {{ dbt.type_string() }}) as raw_json,

        ---------- dates and timestamps
        {{ utc_timestamp(adapter.quote('time')) }} as event_at,
        cast(event_date as date) as event_date,
        {{ utc_timestamp('observed_at') }} as observed_at,
        {{ time_out_of_range(adapter.quote('time'), 'observed_at') }} as is_time_out_of_range,

        ---------- lineage
        cast(_dlt_load_id as {{ dbt.type_string() }}) as load_id

    from {{ source_or_empty('trend_audit', 'audit_logs') }} as source

)

select * from renamed
