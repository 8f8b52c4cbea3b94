"""The dbt project as Dagster assets: every model, seed and test (tests become asset checks)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets
from filelock import FileLock

from assets.schedules import WRITER_POOL
from warehouse.dbt_project import BUILD_COMMAND, DBT_PROJECT_DIR
from warehouse.location import WarehouseLocation


def dbt_project() -> DbtProject:
    """The dbt project, with its profile kept beside it."""
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def ensure_manifest(project: DbtProject) -> Path:
    """Parse the project when `manifest.json` is missing or older than any project file; another
    process parsing it meanwhile is waited for, so a half-written manifest is never read."""
    manifest = project.manifest_path
    sources = [
        p
        for folder in ("models", "seeds", "macros", "tests")
        for p in (DBT_PROJECT_DIR / folder).rglob("*")
        if p.is_file()
    ]
    sources += [DBT_PROJECT_DIR / "dbt_project.yml", DBT_PROJECT_DIR / "profiles.yml"]
    newest = max(p.stat().st_mtime for p in sources)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(manifest.with_suffix(".lock")):
        if not manifest.exists() or manifest.stat().st_mtime < newest:
            project.preparer.prepare(project)
    return manifest


def build_dbt_assets(project: DbtProject, location: WarehouseLocation) -> dg.AssetsDefinition:
    """All dbt models and seeds as assets, keyed so dbt sources meet the dlt assets; the build
    writes its artifacts to `location`'s dbt folder (the dbt resource's `posture-dbt` holds the
    writer lock around it)."""

    @dbt_assets(
        manifest=project.manifest_path, project=project, name="dbt_models", pool=WRITER_POOL
    )
    def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
        build = dbt.cli(list(BUILD_COMMAND), context=context, target_path=location.dbt_dir)
        yield from build.stream()

    return dbt_models
