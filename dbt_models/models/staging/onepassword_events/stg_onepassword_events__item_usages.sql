with

renamed as (

    select

        ----------  keys
        cast(tenant as {{ dbt.type_string() }}) as tenant,
        cast(uuid as {{ dbt.type_string() }}) as event_uuid,

        ---------- the use
        cast(action as {{ dbt.type_string() }}) as action,
        cast(vault_uuid as {{ dbt.type_string() }}) as vault_uuid,
        cast(item_uuid as {{ dbt.type_string() }}) as item_uuid,
        cast(used_version as {{ dbt.type_bigint() }}) as used_version,

        ---------- who used it
        cast(user_uuid as {{ dbt.type_string() }}) as user_uuid,
        cast(user_name as {{ dbt.type_string() }}) as user_name,
        cast(user_email as {{ dbt.type_string() }}) as user_email,

        {{ onepassword_client_columns() }}

        {{ onepassword_event_columns() }}

    from {{ source_or_empty('onepassword_events', 'item_usages') }} as source

)

select * from renamed
