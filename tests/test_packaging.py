"""Packaging: every package is listed in pyproject.toml and the embedded data ships with it."""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    listed = set(re.findall(r'^\s+"(neurolp[\w.]*)",$', text.split("packages = [", 1)[1].split("]", 1)[0],
                            flags=re.M))
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "neurolp").rglob("__init__.py")}
    assert on_disk | {"neurolp.data"} == listed


def test_embedded_data_is_importable_as_package_data():
    files = {p.name for p in importlib.resources.files("neurolp.data").iterdir()}
    assert {"rossi2020_offsets.csv", "rossi2020_offsets.json", "README.md"} <= files
