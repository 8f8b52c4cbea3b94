-- The Keeper Security Benchmarks: one row per benchmark id. The catalog comes from the
-- keeper_benchmarks seed; an id the API returned that the seed does not know yet is added with
-- its id as title, so facts always find their benchmark here.

with

catalog as (

    select benchmark_id, title, category, description
    from {{ ref('keeper_benchmarks') }}

),

observed as (

    select distinct benchmark_id
    from {{ ref('stg_keeper_rmd__benchmarks') }}

),

uncatalogued as (

    select
        observed.benchmark_id,
        observed.benchmark_id as title,
        'uncategorized' as category,
        'Returned by the API but not yet described in the keeper_benchmarks seed.' as description

    from observed
    left join catalog
        on observed.benchmark_id = catalog.benchmark_id
    where catalog.benchmark_id is null

)

select benchmark_id, title, category, description, true as is_catalogued
from catalog

union all

select benchmark_id, title, category, description, false as is_catalogued
from uncatalogued
