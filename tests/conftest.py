"""Test-wide settings: no network, no display, and no writes to the user's checkpoint store."""

import os
import tempfile

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timm must never reach for the Hugging Face hub
os.environ["NEUROLP_CHECKPOINTS"] = tempfile.mkdtemp(prefix="neurolp-test-store-")
