"""What every run configuration shares: dataclass fields that carry their help text and
constraints, construction from a dict with unknown keys refused, and comparison for ``--resume``.

A configuration is a ``@dataclass`` subclassing :class:`ConfigMixin` whose fields are made with
:func:`config_field`; ``runtime=True`` marks fields a resumed run may change (devices, progress).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from neurolp.errors import ConfigError

__all__ = ["config_field", "ConfigMixin"]


def config_field(default, help: str, **kw):
    """A config field; ``kw`` may hold its constraints (``min``, ``max``, ``min_open``, ``max_open``,
    ``choices``) and ``runtime=True``, kept in the field's metadata for validation and the CLI."""
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return dataclasses.field(default=default, metadata={"help": help, **kw})


class ConfigMixin:
    """``fields``, ``from_dict``, ``to_dict``, ``replace`` and ``differences`` for config dataclasses."""

    _what = "configuration"  # named in errors: "unknown {_what} option(s)"

    @classmethod
    def fields(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        unknown = sorted(set(data) - set(cls.fields()))
        if unknown:
            raise ConfigError(f"unknown {cls._what} option(s) {unknown}; valid options: "
                              f"{', '.join(cls.fields())}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def differences(self, other, *, include_runtime: bool = False) -> dict[str, tuple]:
        """Fields whose values differ: ``{name: (self's, other's)}`` (runtime fields left out)."""
        out = {}
        for name, f in self.fields().items():
            if not include_runtime and f.metadata.get("runtime"):
                continue
            a, b = getattr(self, name), getattr(other, name)
            if a != b:
                out[name] = (a, b)
        return out
