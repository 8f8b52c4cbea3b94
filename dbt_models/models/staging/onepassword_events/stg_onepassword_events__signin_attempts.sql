with

renamed as (

    select

        ----------  keys
        cast(tenant as {{ dbt.type_string() }}) as tenant,
        cast(uuid as {{ dbt.type_string() }}) as event_uuid,

        ---------- the attempt
        cast(category as {{ dbt.type_string() }}) as category,
        cast({{ adapter.quote('type') }} as {{ dbt.type_string() }}) as signin_type,
        cast(details_value as {{ dbt.type_string() }}) as details_value,
        cast(country as {{ dbt.type_string() }}) as country_code,
        cast(session_uuid as {{ dbt.type_string() }}) as session_uuid,

        ---------- who tried to sign in
        cast(target_user_uuid as {{ dbt.type_string() }}) as user_uuid,
        cast(target_user_name as {{ dbt.type_string() }}) as user_name,
        cast(target_user_email as {{ dbt.type_string() }}) as user_email,

        {{ onepassword_client_columns() }}

        {{ onepassword_event_columns() }}

    from {{ source_or_empty('onepassword_events', 'signin_attempts') }} as source

)

select * from renamed
