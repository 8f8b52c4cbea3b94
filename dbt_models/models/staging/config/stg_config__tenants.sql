with

renamed as (

    select
        cast(organisation as {{ dbt.type_string() }}) as organisation,
        cast(source as {{ dbt.type_string() }}) as source,
        cast(tenant as {{ dbt.type_string() }}) as tenant

    from {{ source_or_empty('config', 'tenants') }} as source

)

select * from renamed
