"""The warehouse: where the DuckDB files live, how to connect, how a read-only copy is published."""
