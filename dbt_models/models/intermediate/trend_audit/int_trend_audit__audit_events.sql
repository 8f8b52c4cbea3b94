-- Every audit event with the flags the KPIs count. Which event types are privileged changes is
-- decided here, once: changes to who can reach the account and with which rights (API keys,
-- invitations, roles, users). Sign-ins, sign-outs and account settings are not.

with

events as (

    select * from {{ ref('stg_trend_audit__audit_logs') }}

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
        api_key_id,
        api_key_name,

        event_type = 'audit.user-signed-in.v1' as is_sign_in,
        event_type = 'audit.user-signed-out.v1' as is_sign_out,
        event_type = 'audit.apiKey_created.v1' as is_api_key_created,
        event_type = 'audit.apiKey_updated.v1' as is_api_key_updated,
        event_type = 'audit.apiKey_deleted.v1' as is_api_key_deleted,
        event_type in ('audit.invitation_created.v1', 'audit.invitation_updated.v1')
            as is_invitation,
        event_type in ('audit.role_created.v1', 'audit.role_updated.v1') as is_role_change,
        event_type in ('audit.user_updated.v1', 'audit.user_deleted.v1') as is_user_change

    from events

)

select
    *,
    (
        is_api_key_created or is_api_key_updated or is_api_key_deleted
        or is_invitation or is_role_change or is_user_change
    ) as is_privileged_change

from flagged
