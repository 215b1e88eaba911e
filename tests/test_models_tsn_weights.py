"""The TSN authors' ImageNet backbones: their state dicts load whole, and the networks compute their graphs.

The fixtures ``data/tsn_inceptionv3_tensors.json`` and ``data/tsn_bninception_tensors.json`` were
written by ``data/make_tsn_zoo_fixtures.py`` from the authors' own code (``bninception/*.yaml``,
``pytorch_load.py`` and ``layer_factory.py`` of yjxiong/tensorflow-model-zoo.torch, branch
tsn-pytorch): every tensor name and shape of their networks, and their graphs op by op, which
:func:`run_authors_graph` runs directly, as the authors' ``forward()`` does.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from ytfgvc.errors import YtfgvcError
from ytfgvc.models import bn_inception, create_model
from ytfgvc.models.backbones import BNINCEPTION_URL, TSN_INCEPTION_V3_URL, create_backbone

from .torch_threads import one_torch_thread  # noqa: F401 - autouse

DATA = Path(__file__).parent / "data"
V3 = json.loads((DATA / "tsn_inceptionv3_tensors.json").read_text())
BNI = json.loads((DATA / "tsn_bninception_tensors.json").read_text())
FIXTURES = {"tsn_inception_v3": V3, "bninception": BNI}


def authors_state(fx: dict, seed: int = 0, bn_as_rows: bool = False) -> dict[str, torch.Tensor]:
    """A state dict with exactly the authors' names and shapes (head included), random values.

    ``bn_as_rows``: BatchNorm vectors as (1, C), as the released files store them.
    """
    g = torch.Generator().manual_seed(seed)
    bn_ids = {p["id"] for _, op, _, p in fx["ops"] if op == "BN"}
    state = {}
    for name, shape in fx["tensors"].items():
        if name.endswith("running_var"):
            t = torch.rand(shape, generator=g) + 0.5
        else:
            t = torch.randn(shape, generator=g) * (0.1 if name.endswith("weight") else 0.5)
        if bn_as_rows and name.rsplit(".", 1)[0] in bn_ids:
            t = t.reshape(1, -1)
        state[name] = t
    return state


def run_authors_graph(ops: list, state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The authors' forward(): their op list in order, each op with the parameters their code built."""
    blobs = {"data": x}
    for out, op, inputs, p in ops:
        a = blobs[inputs[0]]
        if op == "Convolution":
            y = F.conv2d(a, state[f"{p['id']}.weight"], state[f"{p['id']}.bias"], p["stride"], p["padding"])
        elif op == "BN":
            bn = {k: state[f"{p['id']}.{k}"].flatten() for k in ("weight", "bias", "running_mean", "running_var")}
            y = F.batch_norm(a, bn["running_mean"], bn["running_var"], bn["weight"], bn["bias"], eps=p["eps"])
        elif op == "ReLU":
            y = F.relu(a)
        elif op == "Pooling" and p["mode"] == "max":
            y = F.max_pool2d(a, p["kernel_size"], p["stride"], p["padding"], ceil_mode=p["ceil_mode"])
        elif op == "Pooling" and p["mode"] == "ave":
            y = F.avg_pool2d(
                a, p["kernel_size"], p["stride"], p["padding"], p["ceil_mode"], p["count_include_pad"]
            )  # fmt: skip
        elif op == "Concat":
            y = torch.cat([blobs[i] for i in inputs], dim=1)
        else:
            raise ValueError(f"unknown op {op}")
        blobs[out] = y
    return blobs[ops[-1][0]]


def _own_tensors(net: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}


def test_the_fixtures_say_where_they_come_from():
    for fx, url in ((V3, TSN_INCEPTION_V3_URL), (BNI, BNINCEPTION_URL)):
        src = fx["source"]
        assert src["repo"] == "yjxiong/tensorflow-model-zoo.torch" and src["branch"] == "tsn-pytorch"
        assert len(src["commit"]) == 40 and src["weight_url"] == url
    assert V3["head"] == ["top_cls_fc.bias", "top_cls_fc.weight"] and BNI["head"] == ["fc.bias", "fc.weight"]
    assert V3["tensors"]["top_cls_fc.weight"] == [1000, 2048]


def test_tsn_inception_v3_has_exactly_the_authors_tensors():
    net = create_backbone("tsn_inception_v3")
    want = {k: tuple(v) for k, v in V3["tensors"].items() if k not in V3["head"]}
    assert _own_tensors(net.body) == want  # names and shapes: convolutions with bias, BN with statistics
    assert (net.out_channels, net.input_size, net.input_mean, net.input_std) == (2048, 299, (0.5,) * 3, (0.5,) * 3)


def test_every_bninception_tensor_of_the_authors_maps_onto_ours():
    flat = {k: torch.empty(v) for k, v in BNI["tensors"].items() if k not in BNI["head"]}
    mapped = {k: tuple(v.shape) for k, v in bn_inception.convert_flat_state_dict(flat).items()}
    assert mapped == _own_tensors(create_backbone("bninception").body)


@pytest.mark.parametrize("released_layout", [False, True], ids=["as-built", "bn-as-1xC"])
def test_the_authors_inception_v3_file_loads_whole_and_computes_their_graph(tmp_path: Path, released_layout):
    state = authors_state(V3, bn_as_rows=released_layout)
    path = tmp_path / "inceptionv3-cuhk.pth"
    torch.save(state, path)  # no num_batches_tracked: the 2017 files have none
    net = create_backbone("tsn_inception_v3", weights=path).eval()
    assert net.source == f"file:{path}" and net.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "564 tensors loaded" in net.message and "ignored 2 not used by this network: top_cls_fc.* (2)" in net.message
    assert ("(376 reshaped: stored with extra leading size-1 dims" in net.message) == released_layout  # 94 BNs x 4
    own = net.body.state_dict()
    for name in V3["tensors"]:
        if name not in V3["head"]:
            assert torch.equal(own[name], state[name].reshape(own[name].shape)), name
    x = torch.randn(2, 3, 299, 299)
    with torch.no_grad():
        got = net(x)
        want = run_authors_graph(V3["ops"], state, x)
    assert got.shape == (2, 2048, 8, 8)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_the_authors_bninception_file_loads_whole_and_computes_their_graph_on_rgb(tmp_path: Path):
    state = authors_state(BNI, seed=1, bn_as_rows=True)
    path = tmp_path / "bn_inception.pth"
    torch.save(state, path)
    net = create_backbone("bninception", weights=path).eval()
    assert "414 tensors loaded (276 reshaped" in net.message and "fc.* (2)" in net.message
    assert torch.equal(net.body.conv1_7x7_s2.conv.weight, state["conv1_7x7_s2.weight"].flip(1))  # BGR → RGB
    assert torch.equal(
        net.body.inception_5b.pool_proj.bn.running_var, state["inception_5b_pool_proj_bn.running_var"][0]
    )
    # One RGB image in 0-1: ours with its input_mean/std; the authors' graph on BGR 0-255 minus (104, 117, 128).
    img = torch.rand(1, 3, 224, 224)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (net.input_mean, net.input_std))
    with torch.no_grad():
        got = net((img - mean) / std)
        want = run_authors_graph(
            BNI["ops"], state, img.flip(1) * 255 - torch.tensor([104.0, 117, 128]).view(1, 3, 1, 1)
        )
    assert got.shape == (1, 1024, 7, 7)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_a_file_missing_a_tensor_is_an_error_that_names_it(tmp_path: Path):
    state = authors_state(V3)
    del state["mixed_10_tower_2_conv_Conv2D.bias"]
    torch.save(state, tmp_path / "cut.pth")
    with pytest.raises(YtfgvcError, match=r"1 of 564 tensors missing: mixed_10_tower_2_conv_Conv2D\.bias"):
        create_backbone("tsn_inception_v3", weights=tmp_path / "cut.pth")


@pytest.mark.parametrize("name,url", [("tsn_inception_v3", TSN_INCEPTION_V3_URL), ("bninception", BNINCEPTION_URL)])
def test_pretrained_falls_back_to_scratch_naming_the_url_when_the_download_fails(monkeypatch, caplog, name, url):
    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with caplog.at_level(logging.WARNING, logger="ytfgvc.models"):
        net = create_backbone(name, pretrained=True)
    assert net.source == "from scratch" and net.weights_sha256 is None and not net.pretrained
    file_name = url.rsplit("/", 1)[-1]
    assert url in caplog.text and f"download {file_name} and pass --weights FILE" in caplog.text


@pytest.mark.parametrize("name,url", [("tsn_inception_v3", TSN_INCEPTION_V3_URL), ("bninception", BNINCEPTION_URL)])
def test_pretrained_loads_the_authors_file_through_torch_hub_and_records_its_sha256(
    monkeypatch, tmp_path: Path, name, url
):
    fx = FIXTURES[name]
    state = authors_state(fx, seed=2, bn_as_rows=True)
    cached = tmp_path / "checkpoints" / url.rsplit("/", 1)[-1]
    calls = []

    def fake_hub(u, **kwargs):  # what torch.hub does: download once into <hub dir>/checkpoints, then torch.load
        calls.append((u, kwargs))
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, cached)
        return torch.load(cached, weights_only=True)

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_hub)
    model = create_model("tsn", 5, backbone=name, pretrained=True)
    assert calls == [(url, {"map_location": "cpu", "check_hash": True, "weights_only": True})]
    assert model.pretrained_source == f"tsn:{cached.name}" and model.pretrained_parameters()
    assert model.pretrained_sha256 == model.backbone.weights_sha256 == hashlib.sha256(cached.read_bytes()).hexdigest()
    if name == "bninception":  # the flat names were converted and the first convolution flipped to RGB
        assert torch.equal(model.backbone.body.conv1_7x7_s2.conv.weight, state["conv1_7x7_s2.weight"].flip(1))
    else:
        assert torch.equal(model.backbone.body.conv_Conv2D.weight, state["conv_Conv2D.weight"])


def test_a_torchvision_backbone_has_no_sha256_without_a_cached_file(monkeypatch, tmp_path: Path):
    from ytfgvc.models import backbones

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    published = create_backbone("resnet18").body.state_dict()
    monkeypatch.setattr(backbones, "_fetch_torchvision_state", lambda name, w: published)
    assert create_backbone("resnet18", pretrained=True).weights_sha256 is None
    assert create_backbone("resnet18").weights_sha256 is None


@pytest.mark.network
@pytest.mark.parametrize("name", ["tsn_inception_v3", "bninception"])
def test_the_authors_urls_still_serve(name):
    """Opt in with -m network: downloads the authors' file (about 100 MB) into torch.hub's cache."""
    net = create_backbone(name, pretrained=True)
    assert net.source.startswith("tsn:"), net.message


def test_a_run_records_the_file_it_started_from_and_its_sha256(tmp_path: Path):
    from ytfgvc.benchmark.records import weights_label
    from ytfgvc.benchmark.run import weights_record

    path = tmp_path / "inceptionv3-cuhk-0e09b300b493bc74c.pth"
    torch.save(authors_state(V3), path)
    model = create_model("tsn", 3, backbone="tsn_inception_v3", weights=str(path), num_segments=1)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    record = weights_record(model)
    assert record == {"source": f"file:{path}", "file": path.name, "sha256": sha}
    assert weights_label(record) == f"{path.name} (sha256 {sha[:12]})"
