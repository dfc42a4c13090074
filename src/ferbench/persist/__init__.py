"""Persistence: atomic file writes, the checkpoint file format and the run-folder layout.

This is the lowest layer beside :mod:`ferbench.errors` and :mod:`ferbench.config`: it knows file formats
and paths, never model code, so every layer above (models' ``run:`` init, the loader, the trainer,
reports) can read checkpoints without importing each other.
"""

from ferbench.persist.atomic import atomic_write_bytes, atomic_write_text, clean_temp_files
from ferbench.persist.checkpoint import (
    FORMAT,
    read_sidecar,
    read_weights,
    repair_sidecar,
    resolve_checkpoint,
    update_sidecar,
    write_checkpoint,
)
from ferbench.persist.rundir import RunDir

__all__ = ["FORMAT", "RunDir", "atomic_write_bytes", "atomic_write_text", "clean_temp_files", "read_sidecar",
           "read_weights", "repair_sidecar", "resolve_checkpoint", "update_sidecar", "write_checkpoint"]
