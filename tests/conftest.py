"""Test-wide settings: no network, no display, and no writes to the user's checkpoint store."""

import os
import tempfile

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timm must never reach for the Hugging Face hub
os.environ["NEUROLP_DEBUG"] = "1"  # a bug in a command raises with its traceback instead of one line
os.environ["NEUROLP_CHECKPOINTS"] = tempfile.mkdtemp(prefix="neurolp-test-store-")


import pytest  # noqa: E402


@pytest.fixture
def one_torch_thread():
    """One intra-op thread for tests of tiny models, where torch's thread pool only adds overhead
    (and on a busy 2-core machine made them up to 5× slower)."""
    from neurolp.utils import torch_threads

    with torch_threads(1):
        yield
