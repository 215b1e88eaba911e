"""The flow stream: clips are the stacks on disk (order, fields, x/y, flip); both stores alike; cross-modality init."""

import pytest
import torch
from torch import nn
from torchvision.io import ImageReadMode, decode_jpeg

from ytfgvc.data.loader import DeviceBatch, EpochSampler, collate, make_loader
from ytfgvc.data.rawframes import FramePlan, RawFrameDataset, read_list
from ytfgvc.data.sampling import sample_test_indices
from ytfgvc.data.transforms import MultiScaleCrop, OverSample
from ytfgvc.layout import DatasetLayout
from ytfgvc.models import create_model
from ytfgvc.models.backbones import create_backbone
from ytfgvc.models.modality import cross_modality, flow_normalisation
from ytfgvc.store import open_video

from .rawframes_utils import make_prepared

STACK = 3
SIZE = (40, 48)  # H, W


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, DatasetLayout]:
    """The same prepared dataset (frames and flow) in both stores."""
    kw = {"classes": 2, "train_per_class": 3, "test_per_class": 1, "frames": (2, 7), "size": SIZE, "flow_stack": STACK}
    return {s: make_prepared(tmp_path_factory.mktemp(s), store=s, **kw) for s in ("folder", "packed")}


def _plane(layout: DatasetLayout, vid: str, name: str) -> torch.Tensor:
    files = open_video(layout, "flow", vid)
    data = torch.frombuffer(bytearray(files.read(name)), dtype=torch.uint8)
    return decode_jpeg(data, mode=ImageReadMode.GRAY)[0]


@pytest.mark.parametrize("store", ["folder", "packed"])
def test_a_flow_clip_is_the_stacks_on_disk_x_then_y_and_a_flip_mirrors_x(stores, store):
    layout = stores[store]
    record = max(read_list(layout, "train"), key=lambda r: r.num_frames)
    h, w = SIZE
    test = OverSample(h, 10, scale_size=h)  # crops of the full height: no resizing, so pixels compare exactly
    plan = FramePlan("segments", 3, train=False)
    ds = RawFrameDataset(layout, [record], plan, test, modality="flow", flow_stack=STACK)
    pixels = ds[(0, 0)]["pixels"]  # (10 views, 3 segments, 2·STACK channels, h, h)
    assert pixels.shape == (10, 3, 2 * STACK, h, h) and ds.channels == 2 * STACK
    for t, k in enumerate(sample_test_indices(record.num_frames, 3)):  # kept frame k (0-based)
        for j in range(STACK):  # field j of its stack: file (k · STACK + j + 1)
            n = int(k) * STACK + j + 1
            x = _plane(layout, record.video_id, f"flow_x_{n:05d}.jpg")
            y = _plane(layout, record.video_id, f"flow_y_{n:05d}.jpg")
            assert torch.equal(pixels[0, t, 2 * j], x[:, :h]) and torch.equal(pixels[0, t, 2 * j + 1], y[:, :h])
            right = w - h  # view 1: the upper right corner
            assert torch.equal(pixels[1, t, 2 * j], x[:, right:])
            # view 5: view 0 flipped: the field mirrored, so x changes sign (255 - x, TSN's ImageOps.invert)
            assert torch.equal(pixels[5, t, 2 * j], 255 - x[:, :h].flip(-1))
            assert torch.equal(pixels[5, t, 2 * j + 1], y[:, :h].flip(-1))


def test_the_device_path_and_the_normalisation_of_flow(stores):
    layout = stores["folder"]
    records = read_list(layout, "train")
    plan, crop = FramePlan("segments", 2, train=True), MultiScaleCrop(24, scales=(1.0, 0.875, 0.75))
    keys = [(3, i) for i in range(4)]
    here = RawFrameDataset(layout, records, plan, crop, seed=2, modality="flow", flow_stack=STACK)
    assert any(crop.sample(__import__("numpy").random.default_rng([2, 3, i]))[2] for i in range(4))  # a flip among them
    expected = collate([here[k] for k in keys])["pixels"]
    there = RawFrameDataset(layout, records, plan, crop, seed=2, stage="frames", modality="flow", flow_stack=STACK)
    to_dev = DeviceBatch(there, torch.device("cpu"), mean=(0.5,), std=(0.226,))
    batch = collate(there.__getitems__(keys))
    assert torch.equal(to_dev.pixels(batch), expected)
    x, _, _ = to_dev(batch)
    assert x.shape == (4, 2, 2 * STACK, 24, 24)
    assert torch.allclose(x, (expected.view(4, 2, 2 * STACK, 24, 24).float() / 255 - 0.5) / 0.226, atol=1e-5)


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_packed_and_folder_stores_give_identical_training_batches(stores, modality):
    plan, crop = FramePlan("segments", 3, train=True), MultiScaleCrop(24)
    batches = {}
    for store, layout in stores.items():
        ds = RawFrameDataset(
            layout, read_list(layout, "train"), plan, crop, seed=5, stage="frames", modality=modality, flow_stack=STACK
        )
        sampler = EpochSampler(len(ds), shuffle=True, seed=5, global_batch=2)
        loader = make_loader(ds, sampler, batch_size=2, workers=2)  # the workers open the archives themselves
        to_dev, out = DeviceBatch(ds, torch.device("cpu"), mean=(0.5,), std=(0.5,)), []
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            out += [to_dev.pixels(b) for b in loader]
        batches[store] = out
    assert len(batches["folder"]) == 6
    assert all(torch.equal(a, b) for a, b in zip(batches["folder"], batches["packed"], strict=True))


def test_cross_modality_init_averages_the_first_kernel_over_colours_and_repeats_it():
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=True), nn.ReLU(), nn.Conv2d(4, 2, 1))
    rgb, bias, second = body[0].weight.clone(), body[0].bias.clone(), body[2].weight.clone()
    new = cross_modality(body, 10)
    assert body[0] is new and new.in_channels == 10 and new.weight.shape == (4, 10, 3, 3)
    assert torch.allclose(new.weight, rgb.mean(1, keepdim=True).expand(4, 10, 3, 3))
    assert torch.equal(new.bias, bias) and torch.equal(body[2].weight, second)  # the bias kept, the rest untouched
    assert body(torch.randn(1, 10, 8, 8)).shape == (1, 2, 8, 8)


def test_a_flow_backbone_starts_from_the_rgb_weights_with_flows_normalisation(tmp_path):
    rgb = create_backbone("resnet18")
    path = tmp_path / "rgb.pt"
    torch.save(rgb.body.state_dict(), path)
    flow = create_backbone("resnet18", weights=path, modality="flow", flow_stack=5)
    w = rgb.body.conv1.weight
    assert torch.allclose(flow.body.conv1.weight, w.mean(1, keepdim=True).expand(-1, 10, -1, -1))
    assert torch.equal(flow.body.layer1[0].conv1.weight, rgb.body.layer1[0].conv1.weight)
    assert flow.in_channels == 10 and flow.source.startswith("file:") and "cross-modality" in flow.message
    # tsn-pytorch models.py: resnet flow [0.5] / [np.mean(std)]; BNInception [128] / [1] on 0-255; inception 0.5/0.5
    assert flow.input_mean == (0.5,) and flow.input_std == pytest.approx((0.226,), abs=1e-6)
    assert flow_normalisation("bninception", (1.0,)) == ((128 / 255,), (1 / 255,))
    assert flow_normalisation("tsn_inception_v3", (0.5,) * 3) == ((0.5,), (0.5,))
    model = create_model("tsn", 3, backbone="tiny", modality="flow", flow_stack=2, num_segments=2)
    assert model(torch.randn(2, 2, 4, 32, 32)).logits.shape == (2, 3) and model.input_std == (pytest.approx(0.226),)
    with pytest.raises(ValueError, match=r"expected frames \(B, T, 4, H, W\)"):
        model(torch.randn(2, 2, 3, 32, 32))


def test_flow_of_another_stack_size_or_without_its_meta_is_refused_with_a_fix_that_works(stores, tmp_path):
    from types import SimpleNamespace

    from ytfgvc.benchmark.data import check_flow
    from ytfgvc.errors import YtfgvcError

    records = read_list(stores["folder"], "train")
    with pytest.raises(YtfgvcError, match=f"stacks of {STACK} fields in jpg, the config asks for 1 in jpg") as e:
        check_flow(stores["folder"], records, "train", SimpleNamespace(dataset="synthetic", flow_stack=1))
    assert e.value.hint.endswith(f"--flow-stack 1 --force`, or --set flow_stack={STACK}")
    layout = make_prepared(tmp_path, classes=2, train_per_class=1, test_per_class=1, flow_stack=2)
    records = read_list(layout, "train")
    (layout.flow_dir(records[0].video_id) / "meta.json").write_text("{torn")
    with pytest.raises(YtfgvcError, match="no readable meta.json") as e:
        check_flow(layout, records, "train", SimpleNamespace(dataset="synthetic", flow_stack=2))
    assert "None" not in str(e.value) + e.value.hint and e.value.hint.endswith("--flow-stack 2 --force`")
