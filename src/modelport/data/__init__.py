"""Dataset readers and validation: where bad input gets its clear error."""

from .tabular import TableSchema, check_target, fingerprint, infer_schema, read_table

__all__ = ["TableSchema", "check_target", "fingerprint", "infer_schema", "read_table"]
