"""Where the warehouse lives on disk. One place decides; everything else asks here.

Layout under the data directory (default `./data`, or `POSTURE_DATA_DIR`):
- `posture.duckdb`: the working file. Only loads and dbt write it, one step at a time.
- `posture.duckdb.writer`: the lock a step holds while it writes the working file.
- `pipelines/`: dlt's pipeline state (incremental cursors, schemas), kept beside the file it
  describes so that a fresh warehouse never inherits an old cursor.
- `published/posture.duckdb`: the read-only copy that BI tools and analysts open.
- `published/.posture.duckdb.spare`: the copy published before it, which the next publish
  brings up to date in place (readers never open it by this name).
- `dbt/`: dbt's artifacts (manifest, run results, its partial parse) and log for builds of this
  warehouse, so two warehouses on one machine build side by side.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "POSTURE_DATA_DIR"


@dataclass(frozen=True)
class WarehouseLocation:
    """Paths of one warehouse installation."""

    data_dir: Path

    @property
    def working_db(self) -> Path:
        """The DuckDB file that loads and dbt write."""
        return self.data_dir / "posture.duckdb"

    @property
    def writer_lock_file(self) -> Path:
        """The file whose lock a step holds while it writes the working file."""
        return self.data_dir / "posture.duckdb.writer"

    @property
    def pipelines_dir(self) -> Path:
        """dlt's working folder (pipeline state) for this warehouse."""
        return self.data_dir / "pipelines"

    @property
    def dbt_dir(self) -> Path:
        """dbt's target and log folder for builds of this warehouse."""
        return self.data_dir / "dbt"

    @property
    def published_db(self) -> Path:
        """The published read-only copy for readers."""
        return self.data_dir / "published" / "posture.duckdb"

    @property
    def published_spare(self) -> Path:
        """The file published before the current one, kept for the next publish to update."""
        return self.data_dir / "published" / ".posture.duckdb.spare"

    def ensure(self) -> WarehouseLocation:
        """Create the folders; returns self."""
        self.pipelines_dir.mkdir(parents=True, exist_ok=True)
        self.published_db.parent.mkdir(parents=True, exist_ok=True)
        return self


def current_location() -> WarehouseLocation:
    """The warehouse chosen by `POSTURE_DATA_DIR` (default `./data`), as an absolute path."""
    return WarehouseLocation(Path(os.environ.get(DATA_DIR_ENV) or "data").resolve())
