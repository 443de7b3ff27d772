"""Results: the versioned result schema, atomic writes, trained-word files and provenance."""

from vwbench.results.atomic import atomic_write_bytes, atomic_write_json
from vwbench.results.schema import SCHEMA_VERSION, Provenance, RunResult, read_result

__all__ = ["SCHEMA_VERSION", "Provenance", "RunResult", "atomic_write_bytes", "atomic_write_json", "read_result"]
