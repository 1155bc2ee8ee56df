"""Atomic and staged output: nothing half-written, ordinary file modes."""

from __future__ import annotations

import os
import stat

import pytest

from neurolp.utils import atomic_write_text, file_sha256, staged_output


def test_atomic_write_replaces_whole_file_with_umask_mode(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]  # no temp files left


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
    from neurolp.utils import atomic_write

    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as fh:
            fh.write("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_staged_output_moves_only_on_success(tmp_path):
    out = tmp_path / "out"
    with staged_output(out) as stage:
        (stage / "a.csv").write_text("x")
        (stage / "fig").mkdir()
        (stage / "fig" / "b.png").write_text("y")
    assert (out / "a.csv").read_text() == "x" and (out / "fig" / "b.png").read_text() == "y"
    with pytest.raises(ValueError):
        with staged_output(out) as stage:
            (stage / "a.csv").write_text("new")
            (stage / "c.csv").write_text("z")
            raise ValueError("bad input")
    assert (out / "a.csv").read_text() == "x" and not (out / "c.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # staging folder removed


def test_save_figure_writes_png_atomically_and_closes(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neurolp.utils import save_figure

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    path = save_figure(fig, tmp_path / "f.png", dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]


def test_file_sha256_matches_known_digests_across_chunks(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert file_sha256(empty) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    abc = tmp_path / "abc"
    abc.write_bytes(b"abc")
    assert file_sha256(abc) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    big = tmp_path / "big"  # more than one 1 MiB read
    big.write_bytes(b"a" * 1_000_000 * 3)
    import hashlib

    assert file_sha256(big) == hashlib.sha256(b"a" * 3_000_000).hexdigest()
