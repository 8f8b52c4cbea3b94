with

renamed as (

    select

        ----------  keys
        cast(tenant as {{ dbt.type_string() }}) as tenant,
        cast(snapshot_date as date) as snapshot_date,
        cast(id as {{ dbt.type_string() }}) as benchmark_id,

        ---------- text
        cast(status as {{ dbt.type_string() }}) as status,

        ---------- booleans
        cast(auto_resolve as {{ dbt.type_boolean() }}) as is_auto_resolve,

        ---------- timestamps
        {{ utc_timestamp('last_updated') }} as last_updated_at,
        {{ utc_timestamp('observed_at') }} as observed_at,

        ---------- lineage
        cast(_dlt_load_id as {{ dbt.type_string() }}) as load_id,
        cast(_dlt_id as {{ dbt.type_string() }}) as row_id

    from {{ source_or_empty('keeper_rmd', 'security_benchmarks') }} as source

)

select * from renamed
