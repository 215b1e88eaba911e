"""TSN, BN-Inception, I3D, the backbone registry and pretrained-weight loading."""

from __future__ import annotations

import logging
import urllib.error
from pathlib import Path

import pytest
import torch

from ytfgvc.errors import YtfgvcError
from ytfgvc.models import backbones, create_model
from ytfgvc.models.backbones import create_backbone
from ytfgvc.models.bn_inception import BNInception
from ytfgvc.models.common import batchnorm_layers

from .torch_threads import one_torch_thread  # noqa: F401 - autouse

C = 4


def test_tsn_averages_the_segment_scores():
    torch.manual_seed(0)
    model = create_model("tsn", C, backbone="tiny").eval()
    out = model(torch.randn(2, 3, 3, 32, 32))
    assert out.logits.shape == (2, C) and out.extras["segment_scores"].shape == (2, 3, C)
    assert torch.allclose(out.logits, out.extras["segment_scores"].mean(1))
    assert model.partial_bn and model.num_segments == 4 and model.input_kind == "frames"


def test_partial_bn_trains_only_the_first_batchnorm():
    torch.manual_seed(0)
    model = create_model("tsn", C, backbone="tiny", dropout=0.0)
    first, *rest = batchnorm_layers(model.backbone)
    frozen = [{k: v.clone() for k, v in bn.state_dict().items()} for bn in rest]
    first_mean = first.running_mean.clone()
    fc_before = model.fc.weight.clone()
    model.train()
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x = torch.randn(4, 2, 3, 32, 32) * 3 + 1
    loss = model.compute_loss(model(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    optim.step()
    for bn, before in zip(rest, frozen, strict=True):
        assert not bn.training and not bn.weight.requires_grad
        for k, v in bn.state_dict().items():
            assert torch.equal(v, before[k]), k
    assert first.training and not torch.equal(first.running_mean, first_mean)
    assert not torch.equal(model.fc.weight, fc_before)


def test_bninception_network_follows_the_paper_table():
    net = BNInception()
    assert net(torch.randn(1, 3, 224, 224)).shape == (1, 1024, 7, 7)
    assert net(torch.randn(1, 3, 97, 97)).shape == (1, 1024, 3, 3)  # odd sizes work too
    widths = {name: block.out_channels for name, block in net.named_children() if name.startswith("inception")}
    assert widths == {"inception_3a": 256, "inception_3b": 320, "inception_3c": 576, "inception_4a": 576,
                      "inception_4b": 576, "inception_4c": 608, "inception_4d": 608, "inception_4e": 1056,
                      "inception_5a": 1024, "inception_5b": 1024}  # fmt: skip


def test_bninception_model_is_one_frame_on_bninception():
    model = create_model("bninception", C)
    assert model.num_segments == 1 and model.backbone.name == "bninception" and not model.partial_bn
    assert model(torch.randn(2, 1, 3, 64, 64)).logits.shape == (2, C)
    assert model.input_std[0] == pytest.approx(1 / 255)  # Caffe's 0-255 input


def _to_flat(key: str) -> str:
    """This package's BN-Inception name → the flat Caffe/TSN name."""
    unit, kind, param = key.rsplit(".", 2)
    return f"{unit.replace('.', '_')}{'_bn' if kind == 'bn' else ''}.{param}"


def test_bninception_loads_released_flat_weights(tmp_path: Path):
    torch.manual_seed(0)
    ref = BNInception().eval()
    flat = {"module.base_model." + _to_flat(k): v.clone() for k, v in ref.state_dict().items()}
    flat["module.base_model.conv1_7x7_s2.weight"] = flat["module.base_model.conv1_7x7_s2.weight"].flip(1)  # BGR
    flat["module.new_fc.weight"] = torch.zeros(101, 1024)
    torch.save({"state_dict": flat}, tmp_path / "tsn_bninception.pth")
    net = create_backbone("bninception", weights=tmp_path / "tsn_bninception.pth").eval()
    x = torch.randn(1, 3, 64, 64)
    assert torch.allclose(net(x), ref(x))
    assert net.source.startswith("file:") and "module.new_fc.*" in net.message


def test_inflated_i3d_on_a_still_clip_equals_the_2d_network(tmp_path: Path):
    torch.manual_seed(0)
    net2d = create_backbone("resnet18")
    for bn in batchnorm_layers(net2d):  # non-trivial statistics, so inflating them is tested too
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    torch.save(net2d.body.state_dict(), tmp_path / "r18.pt")
    model = create_model("i3d", C, backbone="resnet18", weights=tmp_path / "r18.pt", num_segments=8).eval()
    assert model.input_kind == "clip" and model.pretrained_source.endswith("(inflated)")
    assert model.net3d.conv1.conv.weight.shape == (64, 3, 5, 7, 7)
    frame = torch.randn(1, 3, 64, 64)
    clip_logits = model(frame.unsqueeze(2).repeat(1, 1, 8, 1, 1)).logits
    net2d.eval()
    frame_logits = model.fc(net2d(frame).mean(dim=(2, 3)))
    assert torch.allclose(clip_logits, frame_logits, atol=1e-4, rtol=1e-4)
    moving = torch.randn(1, 3, 8, 64, 64)  # and it is 3D: time matters for a moving clip
    assert not torch.allclose(model(moving).logits, model(moving.flip(2)).logits)


def test_i3d_resnet50_takes_32_frame_clips():
    model = create_model("i3d", C)
    assert model.num_segments == 32 and model.net3d.out_channels == 2048
    assert model(torch.randn(1, 3, 32, 32, 32)).logits.shape == (1, C)
    with pytest.raises(ValueError, match="at least 8 frames"):
        model(torch.randn(1, 3, 4, 32, 32))
    with pytest.raises(YtfgvcError, match="inflates a torchvision ResNet"):
        create_model("i3d", C, backbone="tiny")


def test_unknown_backbone_gets_a_did_you_mean():
    with pytest.raises(YtfgvcError, match="did you mean 'resnet50'"):
        create_model("tsn", C, backbone="resnet05")


def test_pretrained_download_failure_falls_back_to_scratch_and_says_so(monkeypatch, caplog):
    def offline(name, weights):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(backbones, "_fetch_torchvision_state", offline)
    with caplog.at_level(logging.WARNING, logger="ytfgvc.models"):
        model = create_model("tsn", C, backbone="resnet18", pretrained=True)
    assert model.pretrained_source == "from scratch" and model.pretrained_parameters() == []
    assert "could not fetch torchvision:resnet18.IMAGENET1K_V1" in caplog.text and "--weights" in caplog.text


def test_pretrained_weights_load_and_a_local_file_wins(monkeypatch, tmp_path: Path):
    torch.manual_seed(1)
    published = create_backbone("resnet18").body.state_dict()
    published = {**published, "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
    calls = []
    monkeypatch.setattr(backbones, "_fetch_torchvision_state", lambda n, w: calls.append(n) or published)
    model = create_model("rra", C, backbone="resnet18", pretrained=True)
    assert model.pretrained_source == "torchvision:resnet18.IMAGENET1K_V1"
    assert torch.equal(model.backbone.body.conv1.weight, published["conv1.weight"])
    assert "fc.* (2)" in model.pretrained_message  # the ImageNet head is reported as ignored
    assert len(model.pretrained_parameters()) == len(list(model.backbone.parameters()))

    local = {"module." + k: v + 1 for k, v in published.items() if not k.startswith("fc.")}
    torch.save(local, tmp_path / "mine.pt")
    model = create_model("rra", C, backbone="resnet18", pretrained=True, weights=tmp_path / "mine.pt")
    assert calls == ["resnet18"] and model.pretrained_source == f"file:{tmp_path / 'mine.pt'}"
    assert torch.equal(model.backbone.body.conv1.weight, published["conv1.weight"] + 1)


def test_ill_fitting_weights_are_an_error_that_lists_the_problems(tmp_path: Path):
    torch.save(create_backbone("tiny").body.state_dict(), tmp_path / "tiny.pt")
    with pytest.raises(YtfgvcError, match=r"missing: .*conv1\.weight") as e:
        create_backbone("resnet18", weights=tmp_path / "tiny.pt")
    assert "do not fit" in str(e.value)
    r18 = create_backbone("resnet18").body.state_dict()
    r18["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(r18, tmp_path / "bad.pt")
    with pytest.raises(YtfgvcError, match=r"1 with the wrong shape: layer1\.0\.conv1\.weight \(64, 64, 1, 1\)"):
        create_backbone("resnet18", weights=tmp_path / "bad.pt")
    with pytest.raises(YtfgvcError, match="does not exist"):
        create_backbone("resnet18", weights=tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a state dict")
    with pytest.raises(YtfgvcError, match="cannot read weights file"):
        create_backbone("resnet18", weights=tmp_path / "junk.pt")


def test_frozen_pretrained_layers_keep_their_batchnorm_and_partial_bn_survives_unfreezing(tmp_path: Path):
    torch.save(create_backbone("tiny").body.state_dict(), tmp_path / "tiny.pt")
    model = create_model("tsn", C, backbone="tiny", weights=tmp_path / "tiny.pt").train()
    bns = batchnorm_layers(model.backbone)
    model.freeze_pretrained(True)
    model.train()
    assert all(not p.requires_grad for p in model.backbone.parameters()) and not any(bn.training for bn in bns)
    assert model.fc.weight.requires_grad
    model.freeze_pretrained(False)
    model.train()
    assert model.backbone.body[0][0].weight.requires_grad and bns[0].training and bns[0].weight.requires_grad
    assert not bns[1].training and not bns[1].weight.requires_grad  # partial BN still holds


def test_timm_backbones_by_name():
    pytest.importorskip("timm")
    out = create_model("rra", C, backbone="timm:test_resnet", glimpses=2)(torch.randn(1, 2, 3, 64, 64))
    assert out.logits.shape == (1, C) and out.extras["attention"].shape[2] == 2
    vit = create_backbone("timm:test_vit")
    assert vit(torch.randn(1, 3, 64, 64)).shape == (1, vit.out_channels, 4, 4)  # tokens back on their grid
    assert vit.source == "from scratch"
    with pytest.raises(YtfgvcError, match="did you mean 'timm:test_resnet'"):
        create_backbone("timm:test_resnett")


def test_models_command_lists_models_and_backbones():
    import json

    from click.testing import CliRunner

    from ytfgvc.cli import main

    res = CliRunner().invoke(main, ["models", "--json"])
    assert res.exit_code == 0, res.output
    listing = json.loads(res.output)
    assert {"rra", "rra_parallel", "tsn", "bninception", "i3d"} <= set(listing["models"])
    backbones_listed = {"inception_v3", "tsn_inception_v3", "resnet50", "resnet152", "bninception", "timm:<name>"}
    assert backbones_listed <= set(listing["backbones"])


def test_torchvisions_published_inception_v3_layout_fits_the_paper_backbone(monkeypatch, caplog):
    import torchvision

    # The published file is the full network: auxiliary classifier and ImageNet head included.
    published = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()
    monkeypatch.setattr(backbones, "_fetch_torchvision_state", lambda name, w: published)
    net = create_backbone("inception_v3", pretrained=True)
    assert net.source == "torchvision:inception_v3.IMAGENET1K_V1" and net.input_size == 299
    assert "AuxLogits.* (" in net.message and "fc.* (2)" in net.message
    assert torch.equal(net.body.Mixed_7c.branch_pool.conv.weight, published["Mixed_7c.branch_pool.conv.weight"])
    with caplog.at_level(logging.WARNING, logger="ytfgvc.models"):
        assert create_backbone("tiny", pretrained=True).source == "from scratch"
    assert "no downloadable weights for 'tiny'" in caplog.text
