"""Model registry: ``{variant}-{arch}`` names → ``nn.Module`` (modelled on timm's ``create_model``).

Variants (paper Table 1):

* ``base``   — the architecture as is (k×k kernels);
* ``large``  — every conv enlarged to ``l = 2⌈k/2⌉ + k``, no mask ("Large" conv);
* ``lp{p}``  — Lp-convolution with ``p_init = p``, C and p trainable (e.g. ``lp2``, ``lp16``);
* ``lp{p}f`` — the same with C and p frozen (``lp256f`` is the paper's †: the base model in
  large-kernel clothing).

Architectures register themselves with :func:`register_arch`; a builder takes ``num_classes`` and
``image_size`` (and optional keyword arguments) and returns the *base* model.

Other brain-inspired families (Hebbian, locally connected, DoG-initialised, ...) add their own
variant prefixes with :func:`register_variant`; their modules are listed in ``_PLUGIN_MODULES`` and
imported when the registry is first used, so a name such as ``lcws10-resnet20`` resolves anywhere a
model name is accepted (train, eval, rsa, fit-mpnd, checkpoints).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from neurolp.errors import ConfigError

__all__ = ["ArchSpec", "ModelName", "VariantSpec", "register_arch", "register_variant", "parse_model_name",
           "is_registry_name", "create_model", "list_archs", "list_models", "ARCHS", "VARIANTS", "DEFAULT_P"]

DEFAULT_P = (2, 4, 8, 16)  # the paper's p_init values; `list_models` shows these plus lp256f


@dataclass(frozen=True)
class ArchSpec:
    name: str
    builder: Callable[..., nn.Module]
    description: str = ""
    has_drop_path: bool = False  # supports stochastic depth through `drop_path_rate`
    tags: tuple[str, ...] = field(default_factory=tuple)


ARCHS: dict[str, ArchSpec] = {}


def register_arch(name: str, *, description: str = "", has_drop_path: bool = False, tags=()):
    """Decorator registering ``fn(num_classes, image_size, **kwargs) -> nn.Module`` as ``name``."""

    def deco(fn):
        if name in ARCHS:
            raise ValueError(f"architecture {name!r} is already registered")
        ARCHS[name] = ArchSpec(name, fn, description or (fn.__doc__ or "").strip().split("\n")[0],
                               has_drop_path, tuple(tags))
        return fn

    return deco


@dataclass(frozen=True)
class VariantSpec:
    """A plug-in variant: ``pattern`` matches the prefix before ``-{arch}`` (e.g. ``lcws(\\d+)``).

    ``build(name, arch, num_classes, image_size, convert_kwargs, **arch_kwargs) -> nn.Module`` makes
    the model (``name`` is the parsed :class:`ModelName`; ``name.params`` holds the pattern's groups).
    ``canonical(groups) -> str`` spells the prefix canonically (default: as matched, lower case).
    ``archs`` restricts the architectures (None: any registered one). ``examples`` are the names
    ``list_models`` shows for an architecture (``{arch}`` is substituted).
    """

    name: str
    pattern: re.Pattern
    build: Callable[..., nn.Module]
    canonical: Callable[[tuple], str] | None = None
    archs: tuple[str, ...] | None = None
    examples: tuple[str, ...] = ()
    description: str = ""


VARIANTS: dict[str, VariantSpec] = {}

# Modules that register plug-in variants (imported lazily with the built-in architectures).
_PLUGIN_MODULES: tuple[str, ...] = ("neurolp.models.dog", "neurolp.hebbian.model", "neurolp.models.local")


def register_variant(name: str, pattern: str, build: Callable[..., nn.Module], *,
                     canonical: Callable[[tuple], str] | None = None, archs=None, examples=(),
                     description: str = "") -> VariantSpec:
    """Register a model-name prefix (a regular expression, matched whole) and how to build it."""
    if name in VARIANTS or name in ("base", "large", "lp"):
        raise ValueError(f"variant {name!r} is already registered")
    spec = VariantSpec(name, re.compile(pattern), build, canonical, tuple(archs) if archs else None,
                       tuple(examples), description)
    VARIANTS[name] = spec
    return spec


@dataclass(frozen=True)
class ModelName:
    variant: str          # "base" | "large" | "lp" | a registered plug-in variant
    arch: str
    p_init: float | None = None
    frozen: bool = False
    prefix: str = ""      # plug-in variants: the canonical prefix, e.g. "lcws10"
    params: tuple = ()    # plug-in variants: the prefix pattern's groups

    def __str__(self) -> str:
        if self.variant in ("base", "large"):
            return f"{self.variant}-{self.arch}"
        if self.variant != "lp":
            return f"{self.prefix}-{self.arch}"
        return f"lp{self.p_init:g}{'f' if self.frozen else ''}-{self.arch}"


_NAME_RE = re.compile(r"^(?:(base|large)|lp(\d+(?:\.\d+)?)(f?))-(.+)$")


def _ensure_builtin_archs() -> None:
    import importlib

    import neurolp.models.archs  # noqa: F401  (registers the torchvision architectures)

    for mod in _PLUGIN_MODULES:
        importlib.import_module(mod)


def _parse_plugin(name: str) -> ModelName | None:
    """Match ``name`` against the plug-in variants; the longest architecture suffix wins."""
    for spec in VARIANTS.values():
        for arch in sorted(spec.archs or ARCHS, key=len, reverse=True):
            if not name.endswith("-" + arch):
                continue
            m = spec.pattern.fullmatch(name[: -len(arch) - 1])
            if m is None:
                continue
            if arch not in ARCHS:
                raise ConfigError(f"{name!r}: architecture {arch!r} is not registered")
            groups = m.groups()
            prefix = spec.canonical(groups) if spec.canonical else m.group(0)
            return ModelName(spec.name, arch, prefix=prefix, params=groups)
    return None


def _refuse_plugin_arch(name: str) -> None:
    """A plug-in prefix on an architecture it does not support: say which ones it does."""
    if "-" not in name:
        return
    prefix, arch = name.split("-", 1)
    for spec in VARIANTS.values():
        if spec.pattern.fullmatch(prefix) and not _NAME_RE.match(name):
            valid = spec.archs or tuple(sorted(ARCHS))
            raise ConfigError(f"{spec.name} models ({prefix}-...) exist for {', '.join(valid)}, not {arch!r}; "
                              f"e.g. {prefix}-{valid[0]} (see `neurolp models`)")


def is_registry_name(name: str) -> bool:
    """Whether ``name`` is meant as a registry name (``{base|large|lp…}-{arch}`` or a plug-in
    variant's prefix), whether or not its architecture exists: :func:`parse_model_name` then says
    what is wrong, instead of the name being taken for, e.g., a torchvision model."""
    if not isinstance(name, str) or "-" not in name:
        return False
    name = name.strip().lower()
    if _NAME_RE.match(name):
        return True
    _ensure_builtin_archs()
    # Prefixes and architecture names hold no "-", so the prefix is the part before the first one.
    return any(v.pattern.fullmatch(name.split("-", 1)[0]) for v in VARIANTS.values())


def parse_model_name(name: str) -> ModelName:
    """Split ``"lp2-resnet18"`` into its parts; unknown names list the valid ones."""
    _ensure_builtin_archs()
    if isinstance(name, str):
        plugin = _parse_plugin(name.strip().lower())
        if plugin is not None:
            return plugin
        _refuse_plugin_arch(name.strip().lower())
    m = _NAME_RE.match(name.strip().lower()) if isinstance(name, str) else None
    if m is None:
        extra = "".join(f", {v.name} ({v.description or v.pattern.pattern})" for v in VARIANTS.values())
        raise ConfigError(
            f"invalid model name {name!r}: expected {{variant}}-{{arch}} with variant base, large, "
            f"lp{{p}} or lp{{p}}f{extra} (e.g. lp2-resnet18, lp256f-alexnet); "
            f"archs: {', '.join(sorted(ARCHS))}")
    base_or_large, p, frozen, arch = m.groups()
    if arch not in ARCHS:
        raise ConfigError(f"unknown architecture {arch!r} in model name {name!r}; "
                          f"valid architectures: {', '.join(sorted(ARCHS))}")
    if base_or_large:
        return ModelName(base_or_large, arch)
    p_init = float(p)
    if p_init < 1:
        raise ConfigError(f"p_init must be >= 1 in {name!r} (the L_p norm needs p >= 1)")
    return ModelName("lp", arch, p_init, bool(frozen))


def create_model(name: str, num_classes: int = 1000, image_size: int = 224, *,
                 drop_path_rate: float = 0.0, convert_kwargs: dict[str, Any] | None = None,
                 **arch_kwargs) -> nn.Module:
    """Build a registered model, e.g. ``create_model("lp2-resnet18", num_classes=100, image_size=32)``.

    ``image_size`` ≤ 32 selects CIFAR stems (see :mod:`neurolp.models.archs`). ``convert_kwargs`` go
    to :func:`~neurolp.layers.lp_convert` / :func:`~neurolp.layers.large_convert` (e.g.
    ``{"C_param": "spd"}``). The returned model carries ``model.neurolp_spec``, a dict describing
    how it was built (what checkpoints record).
    """
    from neurolp.layers import large_convert, lp_convert

    spec_name = parse_model_name(name)
    arch = ARCHS[spec_name.arch]
    if num_classes < 1 or image_size < 8:
        raise ConfigError(f"need num_classes >= 1 and image_size >= 8, got {num_classes}, {image_size}")
    if drop_path_rate:
        if not arch.has_drop_path:
            raise ConfigError(f"{spec_name.arch} has no stochastic depth; use drop_path_rate=0")
        arch_kwargs["drop_path_rate"] = drop_path_rate
    convert_kwargs = dict(convert_kwargs or {})
    plugin = VARIANTS.get(spec_name.variant)
    try:
        if plugin is not None:
            model = plugin.build(spec_name, arch, num_classes, image_size, convert_kwargs, **arch_kwargs)
        else:
            model = arch.builder(num_classes=num_classes, image_size=image_size, **arch_kwargs)
    except TypeError as exc:  # an option this architecture does not have
        raise ConfigError(f"invalid options for {spec_name.arch} ({spec_name}): {exc}") from exc
    if plugin is None:  # plug-in variants convert inside their own build
        try:
            if spec_name.variant == "large":
                large_convert(model, **convert_kwargs)
            elif spec_name.variant == "lp":
                convert_kwargs.setdefault("frozen", spec_name.frozen)
                lp_convert(model, spec_name.p_init, **convert_kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid conversion options {convert_kwargs} for {name!r}: {exc}") from exc
    model.neurolp_spec = {"name": str(spec_name), "arch": spec_name.arch, "variant": spec_name.variant,
                          "p_init": spec_name.p_init, "frozen": spec_name.frozen,
                          "num_classes": num_classes, "image_size": image_size,
                          "drop_path_rate": drop_path_rate, "convert_kwargs": convert_kwargs,
                          "arch_kwargs": {k: v for k, v in arch_kwargs.items() if k != "drop_path_rate"}}
    return model


def list_archs() -> list[str]:
    _ensure_builtin_archs()
    return sorted(ARCHS)


def list_models(arch: str | None = None, p_values=DEFAULT_P) -> list[str]:
    """The canonical names per architecture: base, large, lp{p} for the paper's p, and lp256f."""
    archs = [arch] if arch else list_archs()
    _ensure_builtin_archs()  # plug-in variants register on import
    names = []
    for a in archs:
        names += [f"base-{a}", f"large-{a}", *(f"lp{p:g}-{a}" for p in p_values), f"lp256f-{a}"]
        for v in VARIANTS.values():
            if v.archs is None or a in v.archs:
                names += [e.format(arch=a) for e in v.examples]
    return names
