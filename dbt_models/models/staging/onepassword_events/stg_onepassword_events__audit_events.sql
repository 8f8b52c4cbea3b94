with

renamed as (

    select

        ----------  keys
        cast(tenant as {{ dbt.type_string() }}) as tenant,
        cast(uuid as {{ dbt.type_string() }}) as event_uuid,

        ---------- the change
        cast(action as {{ dbt.type_string() }}) as action,
        cast(object_type as {{ dbt.type_string() }}) as object_type,
        cast(object_uuid as {{ dbt.type_string() }}) as object_uuid,
        cast(object_name as {{ dbt.type_string() }}) as object_name,
        cast(object_email as {{ dbt.type_string() }}) as object_email,
        cast(aux_id as {{ dbt.type_bigint() }}) as aux_id,
        cast(aux_uuid as {{ dbt.type_string() }}) as aux_uuid,
        cast(aux_name as {{ dbt.type_string() }}) as aux_name,
        cast(aux_email as {{ dbt.type_string() }}) as aux_email,
        cast(aux_info as {{ dbt.type_string() }}) as aux_info,

        ---------- who acted, from which session
        cast(actor_uuid as {{ dbt.type_string() }}) as actor_uuid,
        cast(actor_name as {{ dbt.type_string() }}) as actor_name,
        cast(actor_email as {{ dbt.type_string() }}) as actor_email,
        cast(session_uuid as {{ dbt.type_string() }}) as session_uuid,
        {{ utc_timestamp('session_login_time') }} as session_login_time,
        cast(session_device_uuid as {{ dbt.type_string() }}) as session_device_uuid,
        cast(session_ip as {{ dbt.type_string() }}) as session_ip,

        {{ onepassword_event_columns() }}

    from {{ source_or_empty('onepassword_events', 'audit_events') }} as source

)

select * from renamed
