-- One row per person across the vendors, matched by lower-cased e-mail: the same person in
-- Keeper, 1Password and Trend Micro (where a Trend principal's e-mail is known) is one row, and
-- person_key finds their events in fct_security_events.

with

identities as (

    select
        identities.*,
        coalesce(tenants.organisation, {{ default_organisation() }}) as organisation
    from {{ ref('int_cross_vendor__person_identities') }} as identities
    left join {{ ref('stg_config__tenants') }} as tenants
        on identities.source = tenants.source
        and identities.tenant = tenants.tenant

),

person_organisations as (

    select distinct person_email, organisation
    from identities

),

organisations as (

    select
        person_email,
        {{ dbt.listagg('organisation', "', '", 'order by organisation') }} as organisations
    from person_organisations
    group by person_email

),

people as (

    select
        person_email,
        max(person_name) as person_name,
        {%- for source in ['keeper', 'trend', 'onepassword'] %}
        count(distinct case when source = '{{ source }}' then tenant end) as {{ source }}_tenants,
        {%- endfor %}
        min(first_seen_on) as first_seen_on,
        max(last_seen_on) as last_seen_on
    from identities
    group by person_email

)

select
    {{ dbt.hash('people.person_email') }} as person_key,
    people.person_email,
    people.person_name,
    organisations.organisations,
    people.keeper_tenants,
    people.trend_tenants,
    people.onepassword_tenants,
    people.first_seen_on,
    people.last_seen_on

from people
inner join organisations
    on people.person_email = organisations.person_email
