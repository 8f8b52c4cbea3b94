"""What a `posture load` process keeps out of its imports: about 65 MB of its peak memory.

Nothing a load runs needs pandas, but DuckDB's parameter binding and pyarrow import it, only to
check whether a value is one of its types (about 50 MB of modules and libraries, with numpy).
dlt imports SQLAlchemy only for its URL class, and has its own when SQLAlchemy is missing.
sqlglot, which dlt imports, is also installed with compiled modules (`sqlglotc`, that
dagster-dbt's parsing wants); a load makes little use of it, and sqlglot's own Python modules
take about 20 MB less. These only work before the first of these libraries is imported, and they
last for the process, so only the `posture` program does this, for a load (see `cli.main.run`);
a process that goes on to other work (Dagster, a notebook, the tests) must not."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

KEPT_OUT = ("pandas", "sqlalchemy", "sqlglotrs")  # sqlglotrs: sqlglot warns without sqlglotc
PYTHON_SOURCES = ("sqlglot",)  # packages imported from their .py files, not compiled modules
_SOURCE_LOADERS = [(importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES)]


class _LeanImports(importlib.abc.MetaPathFinder):
    """Refuses `KEPT_OUT` as if not installed; finds `PYTHON_SOURCES` among .py files only."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        package = name.partition(".")[0]
        if package in KEPT_OUT:
            raise ModuleNotFoundError(f"{name} is kept out of `posture load` processes", name=name)
        if package in PYTHON_SOURCES:
            for entry in path or sys.path:
                spec = importlib.machinery.FileFinder(entry, *_SOURCE_LOADERS).find_spec(name)
                if spec is not None:
                    return spec
        return None


def keep_imports_lean() -> None:
    """From now on, this process imports none of `KEPT_OUT`, and sqlglot from its Python
    sources. Does nothing once one of them is imported (too late to save anything)."""
    if not any(name.partition(".")[0] in (*KEPT_OUT, *PYTHON_SOURCES) for name in sys.modules):
        sys.meta_path.insert(0, _LeanImports())
