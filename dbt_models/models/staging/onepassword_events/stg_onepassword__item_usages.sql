with

source as (

    {{ source_or_empty('onepassword_events', 'item_usages') }}

),

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

        ---------- client (the app that made the request)
        cast(client_app_name as {{ dbt.type_string() }}) as client_app_name,
        cast(client_app_version as {{ dbt.type_string() }}) as client_app_version,
        cast(client_platform_name as {{ dbt.type_string() }}) as client_platform_name,
        cast(client_platform_version as {{ dbt.type_string() }}) as client_platform_version,
        cast(client_os_name as {{ dbt.type_string() }}) as client_os_name,
        cast(client_os_version as {{ dbt.type_string() }}) as client_os_version,
        cast(client_ip_address as {{ dbt.type_string() }}) as client_ip_address,

        ---------- location (geolocated by the vendor)
        cast(location_country as {{ dbt.type_string() }}) as location_country,
        cast(location_region as {{ dbt.type_string() }}) as location_region,
        cast(location_city as {{ dbt.type_string() }}) as location_city,
        location_latitude,
        location_longitude,

        ---------- as sent (JSON text)
        cast(raw as {{ dbt.type_string() }}) as raw_json,

        ---------- dates and timestamps
        {{ adapter.quote('timestamp') }} as occurred_at,
        cast(event_date as date) as event_date,
        observed_at,

        ---------- lineage
        cast(_dlt_load_id as {{ dbt.type_string() }}) as load_id

    from source

)

select * from renamed
