"""The model registry: names, every architecture × variant, and the paper's size numbers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from neurolp.errors import ConfigError
from neurolp.layers import LargeConv2d, LpConv2d, lp_convert, lp_layers
from neurolp.models import create_model, list_archs, list_models, model_summary, parse_model_name

PAPER_ARCHS = ["alexnet", "vgg16", "resnet18", "resnet34", "convnext_tiny", "resnet50",
               "resnext50_32x4d", "densenet121"]


def test_names_parse_and_bad_names_list_the_valid_ones():
    n = parse_model_name("lp256f-alexnet")
    assert (n.variant, n.arch, n.p_init, n.frozen) == ("lp", "alexnet", 256.0, True)
    assert str(parse_model_name("LP2-resnet18")) == "lp2-resnet18"
    assert parse_model_name("large-vgg16").variant == "large"
    with pytest.raises(ConfigError, match="resnet18"):
        parse_model_name("lp2-resnet19")
    with pytest.raises(ConfigError, match="variant"):
        parse_model_name("small-resnet18")
    with pytest.raises(ConfigError, match=">= 1"):
        parse_model_name("lp0.5-resnet18")
    assert set(PAPER_ARCHS) <= set(list_archs())
    assert list_models("alexnet") == ["base-alexnet", "large-alexnet", "lp2-alexnet", "lp4-alexnet",
                                      "lp8-alexnet", "lp16-alexnet", "lp256f-alexnet"]


def test_variants_and_spec():
    m = create_model("lp4f-smallcnn", num_classes=7, image_size=16)
    layers = lp_layers(m)
    assert len(layers) == 4 and all(l.p_init == 4.0 and not l.C.requires_grad for _, l in layers)
    assert m.neurolp_spec["name"] == "lp4f-smallcnn" and m.neurolp_spec["num_classes"] == 7
    spd = create_model("lp2-smallcnn", 3, 16, convert_kwargs={"C_param": "spd"})
    assert all(l.C_param == "spd" for _, l in lp_layers(spd))
    with pytest.raises(ConfigError, match="stochastic depth"):
        create_model("base-resnet18", drop_path_rate=0.1)
    # options are never passed through to torchvision, so nothing can ask it to download weights
    with pytest.raises(ConfigError, match="invalid options for resnet18"):
        create_model("base-resnet18", weights="DEFAULT")
    with pytest.raises(ConfigError, match="invalid conversion options"):
        create_model("lp2-smallcnn", 3, 16, convert_kwargs={"C_param": "cholesky"})
    cx = create_model("base-convnext_tiny", 10, 32, drop_path_rate=0.2)
    assert cx.features[-1][-1].stochastic_depth.p == pytest.approx(0.2)


def _conv_output_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, tuple]:
    shapes, hooks = {}, []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: shapes.__setitem__(name, tuple(out.shape))))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return shapes


def _size(arch: str) -> int:
    return 32 if arch == "vgg16" else 16  # tiny inputs; VGG's five max-pools need 32 px


@pytest.mark.slow
@pytest.mark.parametrize("arch", PAPER_ARCHS)
def test_every_architecture_lp2_keeps_shapes_and_trains(arch):
    torch.manual_seed(0)
    x = torch.randn(2, 3, _size(arch), _size(arch))
    with torch.device("meta"):  # reference conv output shapes, computed for free
        ref_shapes = _conv_output_shapes(create_model(f"base-{arch}", 10, _size(arch)).eval(), x.to("meta"))
    model = create_model(f"lp2-{arch}", num_classes=10, image_size=_size(arch))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(isinstance(m, LpConv2d) for m in convs)
    out = model.train()(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.logsumexp(1).mean().backward()
    for _, layer in lp_layers(model):
        assert torch.isfinite(layer.C.grad).all() and torch.isfinite(layer.log2p.grad).all()
    first = lp_layers(model)[0][1]
    assert first.C.grad.abs().sum() > 0 and first.weight.grad.abs().sum() > 0
    assert _conv_output_shapes(model.eval(), x) == ref_shapes  # every conv keeps its output size


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["alexnet", "vgg16", "resnet18", "resnet34", "convnext_tiny"])
def test_table1_architectures_large_and_lp256f(arch):
    """``large`` keeps every conv's output size; ``lp256f`` on copied weights is the base model."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, _size(arch), _size(arch))
    base = create_model(f"base-{arch}", num_classes=10, image_size=_size(arch)).eval()
    ref_shapes = _conv_output_shapes(base, x)
    with torch.no_grad():
        y = base(x)
        lp256f = lp_convert(copy.deepcopy(base), 256.0, frozen=True)
        assert torch.allclose(lp256f(x), y, atol=1e-4, rtol=1e-3)
    del lp256f
    large = create_model(f"large-{arch}", num_classes=10, image_size=_size(arch)).eval()
    assert all(isinstance(m, LargeConv2d) for m in large.modules() if isinstance(m, nn.Conv2d))
    assert _conv_output_shapes(large, x) == ref_shapes


# Paper Table 10 (TinyImageNet, 200 classes, 224 px): params (M) and FLOPs (G, i.e. MACs).
TABLE10 = {"base-alexnet": (57.82, 0.71), "lp2-alexnet": (68.6, 3.41), "lp2-vgg16": (200.5, 83.74),
           "lp2-resnet18": (61.5, 9.86), "lp2-resnet34": (116.6, 19.93), "lp2-convnext_tiny": (33.8, 5.42)}


@pytest.mark.parametrize("name", sorted(TABLE10))
def test_sizes_match_paper_table10(name):
    params_m, gmacs = TABLE10[name]
    s = model_summary(name, num_classes=200, image_size=224)
    assert s["params"] / 1e6 == pytest.approx(params_m, abs=0.06)
    assert s["macs"] / 1e9 == pytest.approx(gmacs, rel=0.01)


def test_cifar_stem_sizes_match_the_official_models():
    # lpconv-anchor §8: ResNet-18-CIFAR conv MACs 140M → 769M, AlexNet-CIFAR conv params 2.45M → 13.1M
    assert model_summary("base-resnet18", 100, 32)["macs"] / 1e6 == pytest.approx(140, rel=0.01)
    assert model_summary("large-resnet18", 100, 32)["macs"] / 1e6 == pytest.approx(769, rel=0.01)
    with torch.device("meta"):
        base = create_model("base-alexnet", 100, 32)
        large = create_model("large-alexnet", 100, 32)
    conv_params = [sum(m.weight.numel() for m in net.modules() if isinstance(m, nn.Conv2d))
                   for net in (base, large)]
    assert conv_params[0] / 1e6 == pytest.approx(2.45, abs=0.01)
    assert conv_params[1] / 1e6 == pytest.approx(13.1, abs=0.05)


def test_plugin_variant_resolves_builds_and_round_trips(monkeypatch):
    """A registered prefix pattern parses, builds through its own function, and prints canonically."""
    from neurolp.models import registry

    built = {}

    def build(name, arch, num_classes, image_size, convert_kwargs, **kw):
        built["params"] = name.params
        model = arch.builder(num_classes=num_classes, image_size=image_size, **kw)
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.zeros_(m.weight)  # something the test can see
        return model

    monkeypatch.setattr(registry, "VARIANTS", {})
    registry.register_variant("toy", r"toy(\d+)", build, canonical=lambda g: f"toy{int(g[0])}",
                              archs=("smallcnn",), examples=("toy3-{arch}",))
    parsed = registry.parse_model_name("TOY007-smallcnn")
    assert (parsed.variant, parsed.arch, parsed.params, str(parsed)) == ("toy", "smallcnn", ("007",), "toy7-smallcnn")
    model = registry.create_model("toy7-smallcnn", num_classes=3, image_size=32)
    assert built["params"] == ("7",)
    assert model.neurolp_spec["name"] == "toy7-smallcnn" and model.neurolp_spec["variant"] == "toy"
    assert all(not m.weight.detach().any() for m in model.modules() if isinstance(m, nn.Conv2d))
    assert "toy3-smallcnn" in registry.list_models("smallcnn")
    with pytest.raises(ConfigError, match="toy"):
        registry.parse_model_name("toy7-alexnet")  # restricted to smallcnn: falls through, names the variant


@pytest.mark.parametrize("name, valid", [("lc-alexnet", "resnet20"), ("dog-resnet18", "convnext_tiny"),
                                         ("hebb1-resnet18", "amato")])
def test_plugin_prefix_on_an_unsupported_arch_names_the_supported_ones(name, valid):
    with pytest.raises(ConfigError, match=f"exist for .*{valid}.*not '{name.split('-', 1)[1]}'"):
        parse_model_name(name)


def test_summary_feeds_the_models_own_input_channels():
    # SudokuCNN reads one digit plane (in_chans = 1): the size check and the MAC count must feed it
    # that, not 3 RGB channels. Hand count, depth 10 × width 256, 3×3 convs with bias, BN, 1×1 head
    # to 9 classes, on 9×9 = 81 cells (MACs count the convolutions' multiply-accumulates only).
    s = model_summary("base-sudokucnn", 9, 9)
    convs = 1 * 256 * 9 + 9 * (256 * 256 * 9) + 256 * 9
    assert s["params"] == convs + 10 * 256 + 10 * 2 * 256 + 9
    assert s["trainable_params"] == s["params"]
    assert s["macs"] == 81 * convs
