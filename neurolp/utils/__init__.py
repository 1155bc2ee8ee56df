"""Small shared helpers: atomic file output, run records, seeding, devices."""

from neurolp.utils.io import (atomic_write, atomic_write_text, file_sha256, save_figure, staged_output,
                              write_csv, write_run_record)
from neurolp.utils.runtime import resolve_device, seed_everything, torch_threads, user_dir

__all__ = [
    "atomic_write",
    "atomic_write_text",
    "file_sha256",
    "save_figure",
    "staged_output",
    "write_csv",
    "write_run_record",
    "resolve_device",
    "seed_everything",
    "torch_threads",
    "user_dir",
]
