with

renamed as (

    select

        ----------  keys
        cast(tenant as {{ dbt.type_string() }}) as tenant,
        cast(snapshot_date as date) as snapshot_date,

        ---------- numerics
        cast(users_logged_recent as {{ dbt.type_bigint() }}) as users_logged_recent,
        cast(users_has_records as {{ dbt.type_bigint() }}) as users_has_records,

        ---------- timestamps
        {{ utc_timestamp('observed_at') }} as observed_at,

        ---------- lineage
        cast(_dlt_load_id as {{ dbt.type_string() }}) as load_id,
        cast(_dlt_id as {{ dbt.type_string() }}) as row_id

    from {{ source_or_empty('keeper_rmd', 'enterprise_stat') }} as source

)

select * from renamed
