#!/usr/bin/env python
"""Build ``data/rossi2020_offsets.csv`` (+ ``.json`` provenance) from the raw Rossi et al. 2020 MAT files.

Usage::

    python scripts/build_rossi2020_table.py [RAW_DIR] [--out data/rossi2020_offsets.csv]

RAW_DIR defaults to ``../shared/data/rossi2020`` next to the repository (a copy of the ``Data/`` folder
of github.com/lfedros/Rossi-et-al-2020, commit f8b1d91). The table has one row per presynaptic input
(columns: neuron, genotype, soma_depth_um, pref_dir_deg, input, dx_um, dy_um, z_um); positions are
rounded to 0.01 µm, far below the imaging resolution. The JSON records the source, the SHA-256 of
every raw file read, the per-neuron input counts (checked when the table is loaded) and the SHA-256
of the table itself.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from neurolp.rf.rossi import load_rossi_raw  # noqa: E402
from neurolp.utils.io import atomic_write_text  # noqa: E402

CITATION = ("Rossi, L. F., Harris, K. D. & Carandini, M. Spatial connectivity matches direction "
            "selectivity in visual cortex. Nature 588, 648–652 (2020). doi:10.1038/s41586-020-2894-4")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("raw_dir", nargs="?", default=str(REPO.parent / "shared" / "data" / "rossi2020"))
    ap.add_argument("--out", default=str(REPO / "data" / "rossi2020_offsets.csv"))
    args = ap.parse_args(argv)
    raw = Path(args.raw_dir)
    table = load_rossi_raw(raw)
    for col in ("dx_um", "dy_um", "z_um", "soma_depth_um"):
        table[col] = table[col].round(2)
    buf = io.StringIO()
    table.to_csv(buf, index=False, lineterminator="\n")
    text = buf.getvalue()
    out = Path(args.out)
    atomic_write_text(out, text)
    ids = sorted(int(n) for n in table["neuron"].unique())
    files = [f"{stem}_{i:02d}.mat" for i in ids for stem in ("postSyn", "spatialEX", "spatialIN")]
    counts = {f"{i:02d}": {k: int(((table["neuron"] == i) & (table["input"] == k)).sum()) for k in ("EX", "IN")}
              for i in ids}
    meta = {
        "table": out.name,
        "description": "x-y offsets (µm) of the functional presynaptic inputs of 17 mouse V1 L2/3 neurons "
                       "from their soma, one row per input",
        "citation": CITATION,
        "source": "github.com/lfedros/Rossi-et-al-2020, folder Data/ (commit f8b1d91)",
        "generated_by": "scripts/build_rossi2020_table.py",
        "generated": dt.date.today().isoformat(),
        "rounding": "positions rounded to 0.01 µm",
        "columns": list(table.columns),
        "n_neurons": len(ids),
        "n_inputs": {"EX": int((table["input"] == "EX").sum()), "IN": int((table["input"] == "IN").sum())},
        "counts": counts,
        "table_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "raw_files_sha256": {f: sha256(raw / f) for f in files},
    }
    atomic_write_text(out.with_suffix(".json"), json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out} ({len(table)} inputs of {len(ids)} neurons: {meta['n_inputs']}) and "
          f"{out.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
