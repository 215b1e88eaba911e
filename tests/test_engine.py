"""The training engine: exact resume, gradient accumulation, frozen layers, DDP over gloo."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ytfgvc.benchmark import run as run_mod
from ytfgvc.benchmark.config import deep_merge, load_config
from ytfgvc.benchmark.run import run_benchmark
from ytfgvc.errors import YtfgvcError

from . import tiny_models  # noqa: F401  (registers test_tiny_frames and test_tiny_clip)
from .rawframes_utils import make_prepared

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("engine")
    make_prepared(root)  # 12 train, 6 test videos of 3 classes
    return root


def tiny_config(root: Path, **over):
    base = {
        "dataset": "synthetic",
        "root": str(root),
        "model": {"name": "test_tiny_frames", "kwargs": {"pretrained": True}},
        "input_size": 24,
        "workers": 0,
        "batch_size": 4,
        "epochs": 4,
        "freeze_epochs": 1,
        "lr_step": 2,
        "test_segments": 3,
    }
    return load_config("tsn", "smoke", overrides=deep_merge(base, over))


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resumed_run_equals_uninterrupted_run(root, tmp_path, monkeypatch):
    cfg = tiny_config(root)  # dropout 0.7 and random crops: both RNG-driven
    whole = run_benchmark(cfg.replace(run="whole"), tmp_path, progress=False, echo=lambda s: None)
    part = run_benchmark(cfg.replace(run="part"), tmp_path, progress=False, stop_after=2, echo=lambda s: None)
    assert part.status == "stopped" and not (part.run_dir / "metrics.json").exists()
    assert len((part.run_dir / "log.jsonl").read_text().splitlines()) == 2
    with pytest.raises(YtfgvcError, match="--resume"):
        run_benchmark(cfg.replace(run="part"), tmp_path, progress=False, echo=lambda s: None)
    resumed = run_benchmark(cfg.replace(run="part", workers=1), tmp_path, resume=True, progress=False)
    assert same_weights(weights(whole.run_dir), weights(resumed.run_dir))
    assert resumed.metrics["scores"] == whole.metrics["scores"]
    log = lambda r: [{k: v for k, v in json.loads(x).items() if k not in ("seconds", "clips_per_s")}  # noqa: E731
                     for x in (r.run_dir / "log.jsonl").read_text().splitlines()]  # fmt: skip
    assert log(resumed) == log(whole)
    assert (resumed.run_dir / "predictions.json").read_text() == (whole.run_dir / "predictions.json").read_text()

    # Control: without restoring the RNG states the resumed run would differ (the test above can fail).
    monkeypatch.setattr(run_mod, "set_rng_state", lambda state, env: None)
    run_benchmark(cfg.replace(run="norng"), tmp_path, progress=False, stop_after=2, echo=lambda s: None)
    norng = run_benchmark(cfg.replace(run="norng"), tmp_path, resume=True, progress=False, echo=lambda s: None)
    assert not same_weights(weights(whole.run_dir), weights(norng.run_dir))

    again = run_benchmark(cfg.replace(run="whole"), tmp_path, progress=False)
    assert again.status == "already finished"


def test_resume_refuses_a_different_config(root, tmp_path):
    cfg = tiny_config(root, epochs=2)
    run_benchmark(cfg.replace(run="r"), tmp_path, progress=False, stop_after=1, echo=lambda s: None)
    with pytest.raises(YtfgvcError, match=r"different config \(lr\)"):
        run_benchmark(cfg.replace(run="r", lr=0.5), tmp_path, resume=True, progress=False)
    # A checkpoint of an older version, whose config still had `decode` (removed): resumed, not refused.
    ckpt = tmp_path / "synthetic/tsn/r/checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    torch.save(state | {"config": state["config"] | {"decode": "gpu"}}, ckpt)
    assert run_benchmark(cfg.replace(run="r"), tmp_path, resume=True, progress=False).status == "finished"
    run_benchmark(cfg.replace(run="s"), tmp_path, progress=False, stop_after=1, echo=lambda s: None)
    (tmp_path / "synthetic/tsn/s/checkpoint.pt").write_bytes(b"torn")
    with pytest.raises(YtfgvcError, match="cannot read checkpoint"):
        run_benchmark(cfg.replace(run="s"), tmp_path, resume=True, progress=False)


def test_gradient_accumulation_equals_one_big_batch(root, tmp_path):
    cfg = tiny_config(root, epochs=2, model={"kwargs": {"dropout": 0.0}})
    big = run_benchmark(cfg.replace(run="big"), tmp_path, progress=False, echo=lambda s: None)
    acc = run_benchmark(cfg.replace(run="acc", micro_batch=2), tmp_path, progress=False, echo=lambda s: None)
    assert (big.metrics["training"]["batch"]["micro"], big.metrics["training"]["batch"]["accum_steps"]) == (4, 1)
    assert (acc.metrics["training"]["batch"]["micro"], acc.metrics["training"]["batch"]["accum_steps"]) == (2, 2)
    assert big.metrics["training"]["workers"] == cfg.workers  # the loader processes used
    a, b = weights(big.run_dir), weights(acc.run_dir)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_pretrained_layers_stay_frozen_for_the_first_epochs(root, tmp_path):
    from ytfgvc.engine import seed_everything
    from ytfgvc.models import create_model

    cfg = tiny_config(root, epochs=1, freeze_epochs=1)
    r = run_benchmark(cfg, tmp_path, progress=False, echo=lambda s: None)
    seed_everything(cfg.seed)
    init = create_model("test_tiny_frames", 3, **cfg.model_kwargs()).state_dict()
    after = weights(r.run_dir)
    assert torch.equal(after["conv.weight"], init["conv.weight"])  # pretrained: frozen in epoch 1
    assert not torch.equal(after["fc.weight"], init["fc.weight"])  # the classifier trained
    assert json.loads((r.run_dir / "log.jsonl").read_text())["frozen"] is True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_equal_one_process(root, tmp_path):
    args = [
        "synthetic", "--root", str(root), "--out", str(tmp_path), "--model", "tsn", "--preset", "smoke",
        "--import", "tests.tiny_models", "--set", "model.name=test_tiny_frames", "--set", "model.kwargs.dropout=0",
        "--set", "test_segments=3", "--input-size", "24", "--workers", "0", "--batch-size", "4", "--epochs", "2",
        "--no-progress", "--json",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "PYTHONPATH": str(REPO)}
    one = subprocess.run(
        [sys.executable, "-m", "ytfgvc", "benchmark", *args, "--run-name", "one"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
         "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
         "-m", "ytfgvc", "benchmark", *args, "--run-name", "two"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    m1, m2 = (json.loads((tmp_path / f"synthetic/tsn/{r}/metrics.json").read_text()) for r in ("one", "two"))
    assert m2["training"]["batch"]["processes"] == 2 and m2["training"]["batch"]["micro"] == 2
    assert m2["scores"] == m1["scores"] and m2["data"]["test_videos"] == 6
    w1, w2 = weights(tmp_path / "synthetic/tsn/one"), weights(tmp_path / "synthetic/tsn/two")
    assert all(torch.allclose(w1[k], w2[k], atol=1e-5) for k in w1)
    p1, p2 = (json.loads((tmp_path / f"synthetic/tsn/{r}/predictions.json").read_text()) for r in ("one", "two"))
    assert [[e["label"] for e in p] for p in p1["results"].values()] == [
        [e["label"] for e in p] for p in p2["results"].values()
    ]
    assert json.loads(two.stdout)["runs"][0]["status"] == "finished"  # printed once, by rank 0


def test_micro_batch_halves_until_it_fits():
    from ytfgvc.engine import DistEnv, find_micro_batch

    tried = []

    def try_batch(m: int) -> None:
        tried.append(m)
        if m > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    assert find_micro_batch(24, try_batch, DistEnv()) == (
        3,
        [f"out of GPU memory with {m} clips per step" for m in (24, 12, 6)],
    )
    assert tried == [24, 12, 6, 3]
    with pytest.raises(YtfgvcError, match="one clip does not fit"):
        find_micro_batch(4, lambda m: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("oom")), DistEnv())


@pytest.mark.parametrize(
    "name, kw, shape",
    [
        ("rra", {"backbone": "resnet18", "num_segments": 2}, (2, 2, 3, 64, 64)),
        ("tsn", {"backbone": "resnet18", "num_segments": 2, "partial_bn": True}, (2, 2, 3, 64, 64)),
        ("bninception", {"backbone": "resnet18"}, (2, 1, 3, 64, 64)),
        ("i3d", {"backbone": "resnet18", "num_segments": 8}, (2, 3, 8, 32, 32)),
    ],
)
def test_no_backward_runs_through_frozen_pretrained_layers(name, kw, shape):
    """While the pretrained trunk is frozen nothing of it is kept for backward, so running it under
    ``torch.no_grad`` would save no memory (and measured no faster on a CPU); unfrozen, it trains."""
    from ytfgvc.models import create_model

    torch.manual_seed(0)
    model = create_model(name, 5, pretrained=False, dropout=0.0, **kw)
    model.pretrained_source = "test:random"  # its trunk counts as pretrained, so it can be frozen
    trunk, x, y = model.trunk, torch.randn(shape), torch.tensor([1, 3])
    inside, saved, outputs = [False], [0, 0], []
    trunk.register_forward_pre_hook(lambda m, a: inside.__setitem__(0, True))
    trunk.register_forward_hook(lambda m, a, out: inside.__setitem__(0, False) or outputs.append(out))

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[inside[0]] += t.numel() * t.element_size()  # [elsewhere, in the trunk]
        return t

    def loss_and_grads(no_grad_trunk: bool = False):
        model.zero_grad(set_to_none=True)
        saved[:] = [0, 0]
        forward = trunk.forward
        if no_grad_trunk:
            trunk.forward = torch.no_grad()(forward)
        try:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                loss = model.compute_loss(model(x), y)
        finally:
            trunk.forward = forward
        loss.backward()
        return loss.detach(), {k: p.grad for k, p in model.named_parameters() if p.grad is not None}

    model.train()
    model.freeze_pretrained(True)
    loss, grads = loss_and_grads()
    trunk_names = {f"{model.trunk_name}.{k}" for k, _ in trunk.named_parameters()}
    assert outputs[-1].grad_fn is None and not outputs[-1].requires_grad  # no graph through the trunk
    assert saved[1] == 0 and saved[0] > 0  # nothing of the trunk kept for backward; the head's activations are
    assert grads and not trunk_names & grads.keys()  # the head trains, the trunk gets no gradient
    loss_ng, grads_ng = loss_and_grads(no_grad_trunk=True)
    assert torch.equal(loss, loss_ng) and grads.keys() == grads_ng.keys()
    assert all(torch.equal(grads[k], grads_ng[k]) for k in grads)

    model.freeze_pretrained(False)  # control: unfrozen, the trunk is in the graph and trains
    _, grads = loss_and_grads()
    assert outputs[-1].grad_fn is not None and saved[1] > 0 and trunk_names & grads.keys()
