{#
  Columns every 1Password staging model shares, renamed and cast the same way: the client
  that made the request (sign-ins and item usages) and the tail every event has (location,
  the record as sent, its time, its load).
#}
{% macro onepassword_client_columns() %}
        ---------- client (the app that made the request)
        cast(client_app_name as {{ dbt.type_string() }}) as client_app_name,
        cast(client_app_version as {{ dbt.type_string() }}) as client_app_version,
        cast(client_platform_name as {{ dbt.type_string() }}) as client_platform_name,
        cast(client_platform_version as {{ dbt.type_string() }}) as client_platform_version,
        cast(client_os_name as {{ dbt.type_string() }}) as client_os_name,
        cast(client_os_version as {{ dbt.type_string() }}) as client_os_version,
        cast(client_ip_address as {{ dbt.type_string() }}) as client_ip_address,
{% endmacro %}

{% macro onepassword_event_columns() %}
        ---------- location (geolocated by the vendor)
        cast(location_country as {{ dbt.type_string() }}) as location_country,
        cast(location_region as {{ dbt.type_string() }}) as location_region,
        cast(location_city as {{ dbt.type_string() }}) as location_city,
        location_latitude,
        location_longitude,

        ---------- as sent (JSON text)
        cast(raw as {{ dbt.type_string() }}) as raw_json,

        ---------- dates and timestamps
        {{ utc_timestamp(adapter.quote('timestamp')) }} as occurred_at,
        cast(event_date as date) as event_date,
        {{ utc_timestamp('observed_at') }} as observed_at,
        {{ time_out_of_range(adapter.quote('timestamp'), 'observed_at') }} as is_time_out_of_range,

        ---------- lineage
        cast(_dlt_load_id as {{ dbt.type_string() }}) as load_id
{% endmacro %}
