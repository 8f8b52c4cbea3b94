with

renamed as (

    select

        ----------  keys
        cast(tenant as {{ dbt.type_string() }}) as tenant,
        cast(snapshot_date as date) as snapshot_date,
        cast(enterprise_user_id as {{ dbt.type_string() }}) as user_email,

        ---------- booleans
        cast(has_records as {{ dbt.type_boolean() }}) as has_records,

        ---------- timestamps
        {{ utc_timestamp('last_logged_in') }} as last_logged_in,
        {{ utc_timestamp('observed_at') }} as observed_at,

        ---------- lineage
        cast(_dlt_load_id as {{ dbt.type_string() }}) as load_id,
        cast(_dlt_id as {{ dbt.type_string() }}) as row_id

    from {{ source_or_empty('keeper_rmd', 'enterprise_stat_details') }} as source

)

select * from renamed
