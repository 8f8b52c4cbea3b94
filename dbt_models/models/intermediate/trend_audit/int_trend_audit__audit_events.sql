-- Every audit event with what its fields mean, decided here once for every mart: who acted (the
-- principal URN's type and id), which API key an `audit.apiKey_*` event is about, whether its
-- time is ahead of the vendor's own clock, and the flags the KPIs count. Privileged changes are
-- changes to who can reach the account and with which rights (API keys, invitations, roles,
-- users); sign-ins, sign-outs and account settings are not.

{# Where API key events carry the key's id and name: the vendor does not document `details`, so
   an `apiKey` object holding the same keys is looked into first, then `details` itself. #}
{% set api_key_id_fields = ['apiKeyID', 'apiKeyId', 'keyID', 'id'] %}
{% set api_key_name_fields = ['alias', 'name', 'apiKeyName'] %}
{# `urn:cloudone:identity:<region>:<account>:<type>/<id>`: the type and id of its last part. #}
{% set urn_resource = "'^urn:.*:([^:/]+)/([^:]+)$'" %}

with

events as (

    select * from {{ ref('stg_trend_audit__audit_logs') }}

),

parsed as (

    select
        *,
        nullif(regexp_extract(principal_urn, {{ urn_resource }}, 1), '') as principal_type,
        nullif(regexp_extract(principal_urn, {{ urn_resource }}, 2), '') as principal_id,
        position('.apiKey_' in event_type) > 0 as is_api_key_event

    from events

),

flagged as (

    select
        tenant,
        event_id,
        event_type,
        event_at,
        event_date,
        is_time_out_of_range,
        observed_at,
        principal_urn,
        principal_type,
        principal_id,
        case when is_api_key_event then coalesce(
            {%- for field in api_key_id_fields %}
            nullif(details_json ->> '$.apiKey.{{ field }}', ''),
            {%- endfor %}
            {%- for field in api_key_id_fields %}
            nullif(details_json ->> '$.{{ field }}', ''),
            {%- endfor %}
            case
                when json_type(details_json, '$.apiKey') = 'VARCHAR'
                    then nullif(details_json ->> '$.apiKey', '')
            end,
            case
                when regexp_extract(details_json ->> '$.urn', {{ urn_resource }}, 1) = 'api-key'
                    then nullif(regexp_extract(details_json ->> '$.urn', {{ urn_resource }}, 2), '')
            end
        ) end as api_key_id,
        case when is_api_key_event then coalesce(
            {%- for field in api_key_name_fields %}
            nullif(details_json ->> '$.apiKey.{{ field }}', ''),
            {%- endfor %}
            {%- for field in api_key_name_fields %}
            nullif(details_json ->> '$.{{ field }}', ''){{ "," if not loop.last }}
            {%- endfor %}
        ) end as api_key_name,
        raw_json,
        load_id,

        -- A few minutes of difference between the vendor's log and its web servers is clock
        -- skew; more is a bad timestamp (the loader never trusts such a time for its marks).
        event_at > observed_at + interval 5 minute as is_future_time,

        event_type = 'audit.user-signed-in.v1' as is_sign_in,
        event_type = 'audit.user-signed-out.v1' as is_sign_out,
        event_type = 'audit.apiKey_created.v1' as is_api_key_created,
        event_type = 'audit.apiKey_updated.v1' as is_api_key_updated,
        event_type = 'audit.apiKey_deleted.v1' as is_api_key_deleted,
        event_type in ('audit.invitation_created.v1', 'audit.invitation_updated.v1')
            as is_invitation,
        event_type in ('audit.role_created.v1', 'audit.role_updated.v1') as is_role_change,
        event_type in ('audit.user_updated.v1', 'audit.user_deleted.v1') as is_user_change

    from parsed

)

select
    *,
    (
        is_api_key_created or is_api_key_updated or is_api_key_deleted
        or is_invitation or is_role_change or is_user_change
    ) as is_privileged_change

from flagged
