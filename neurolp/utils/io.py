"""Atomic output: nothing half-written is ever left where a user looks for results.

* :func:`atomic_write` writes to a temporary file in the target's folder and ``os.replace``-s it
  into place, so readers see either the old file or the complete new one.
* :func:`staged_output` collects a whole run's outputs in a hidden staging folder on ``--out``'s
  file system and moves them in only when the run succeeded; on error nothing in ``--out`` changes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

__all__ = ["atomic_write", "atomic_write_text", "file_sha256", "save_figure", "staged_output",
           "write_csv", "write_run_record",
           "git_commit", "environment_versions"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on clean exit fsync and rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return Path(path)


def save_figure(fig, path: str | os.PathLike, *, close: bool = True, **savefig_kwargs) -> Path:
    """Write a matplotlib figure atomically (format from the suffix, PNG by default) and close it."""
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format=path.suffix.lstrip(".") or "png", **savefig_kwargs)
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks (cache integrity checks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_csv(df, path: str | os.PathLike, **kwargs) -> Path:
    """Write a DataFrame as a tidy CSV atomically (no index unless asked)."""
    kwargs.setdefault("index", False)
    with atomic_write(path, "w") as fh:
        df.to_csv(fh, **kwargs)
    return Path(path)


@contextlib.contextmanager
def staged_output(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging folder whose files are moved into ``out_dir`` only if the block succeeds.

    The staging folder lives on the file system of ``out_dir`` so that every move is an atomic
    rename: inside ``out_dir`` when it exists (it may be a mount point), else next to it, in which
    case the finished folder is renamed into place as a whole. Files already in ``out_dir`` that
    the run does not produce are left untouched (a re-run into an old folder keeps, e.g., a figure
    the new run was told not to draw; ``run.json`` says what this run wrote); files it does produce
    are replaced one by one with ``os.replace``. On error the staging folder, and any parent folder
    this call created, are removed: ``out_dir`` is left as it was.
    """
    out_dir = Path(out_dir)
    existed = out_dir.is_dir()
    created = [] if existed else _make_dirs(out_dir.parent)
    stage: Path | None = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-",
                                               dir=out_dir if existed else out_dir.parent))
    try:
        yield stage
        if not existed and not out_dir.exists():
            os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700; outputs are ordinary folders
            os.rename(stage, out_dir)
            stage = None
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            for src in sorted(stage.rglob("*")):
                if src.is_file():
                    dst = out_dir / src.relative_to(stage)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dst)
    except BaseException:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
            stage = None
        for d in reversed(created):
            with contextlib.suppress(OSError):
                d.rmdir()  # only if still empty
        raise
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)


def _make_dirs(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created, outermost first."""
    missing = []
    for d in (folder, *folder.parents):
        if d.exists():
            break
        missing.append(d)
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
    return list(reversed(missing))


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    """The git commit of the neurolp source tree (``None`` outside a git checkout)."""
    here = Path(path) if path is not None else Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def environment_versions() -> dict[str, str]:
    """Versions of Python and the numerical stack, for run records."""
    from importlib import metadata

    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("neurolp", "torch", "torchvision", "numpy", "scipy", "pandas", "timm"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return versions


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        with contextlib.suppress(Exception):
            return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)


def write_run_record(out_dir: str | os.PathLike, command: str, config: dict[str, Any],
                     extra: dict[str, Any] | None = None) -> Path:
    """Write ``run.json``: everything needed to re-run a command (config, seed, versions, commit)."""
    record = {
        "command": command,
        "argv": sys.argv,
        "config": config,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "versions": environment_versions(),
    }
    if extra:
        record.update(extra)
    return atomic_write_text(Path(out_dir) / "run.json", json.dumps(_jsonable(record), indent=2) + "\n")
