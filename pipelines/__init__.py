"""dlt sources (a package per vendor API) and the pipeline factory tying them to the warehouse."""

import os

# Arrow picks its C++ allocator once, as pyarrow loads, and its default (mimalloc) keeps what
# exited threads freed, such as the parquet writers' buffers of dlt's extract threads (about
# 20 MB held into the load at 50,000 events). The system allocator returns it, and the loads
# trim it between steps (see `pipeline.ReleaseFreedMemory`). A value already set is kept.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
