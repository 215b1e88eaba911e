"""What RRA's glimpses and the eq. 7 visualisation cost, as ratios to TSN on the same backbone.

In one process, on the same random frames (B clips of T frames), it times a training step
(forward, loss, backward) of TSN (the baseline), of RRA with K glimpses, and of the
parallel-glimpses model; then RRA's test forward against TSN's; then one eq. 7
visualisation (forward + K backward passes to the pixels) against one RRA test forward.
A ratio of 1.05 means 5% slower than the baseline.

    python benchmarks/rra_overhead.py                                  # Inception-V3, 299 px, 4 frames
    python benchmarks/rra_overhead.py --backbone resnet18 --size 112 --device cpu --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ytfgvc.models.visualize import attention_saliency  # noqa: E402

from ytfgvc.models import create_model  # noqa: E402


def timed(fns: dict, device: torch.device, repeats: int) -> dict[str, float]:
    """Median seconds of each ``fns[name]()``, runs interleaved (so load drift hits all alike), after a warm-up."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="inception_v3")
    p.add_argument("--size", type=int, default=299)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--glimpses", type=int, default=4)
    p.add_argument("--classes", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.frames, 3, args.size, args.size, device=device)
    y = torch.randint(0, args.classes, (args.batch,), device=device)
    common = {"backbone": args.backbone, "num_segments": args.frames}
    models = {
        "tsn": create_model("tsn", args.classes, **common),
        "rra": create_model("rra", args.classes, glimpses=args.glimpses, **common),
        "rra_parallel": create_model("rra_parallel", args.classes, glimpses=args.glimpses, **common),
    }

    def train_step(model):
        def step():
            model.zero_grad(set_to_none=True)
            model.compute_loss(model(x), y).backward()

        return step

    def test_forward(model):
        def fwd():
            with torch.no_grad():
                model(x)

        return fwd

    print(f"{args.backbone} {args.size}px, {args.batch} clips x {args.frames} frames, K={args.glimpses}, {device}")
    for model in models.values():
        model.to(device).train()
    train = timed({name: train_step(model) for name, model in models.items()}, device, args.repeats)
    base = train["tsn"]
    for name, t in train.items():
        print(f"train step  {name:<13} {t * 1000:8.1f} ms   ratio to tsn {t / base:.3f}")
    for model in models.values():
        model.eval()
    test = timed({name: test_forward(models[name]) for name in ("tsn", "rra")}, device, args.repeats)
    print(f"test fwd    rra           {test['rra'] * 1000:8.1f} ms   ratio to tsn {test['rra'] / test['tsn']:.3f}")
    rra, one = models["rra"], x[0]

    def single_forward():
        with torch.no_grad():
            rra(one[None])

    t = timed({"forward": single_forward, "vis": lambda: attention_saliency(rra, one)}, device, args.repeats)
    print(f"eq. 7 vis   1 clip        {t['vis'] * 1000:8.1f} ms   ratio to 1 rra forward {t['vis'] / t['forward']:.2f}")


if __name__ == "__main__":
    main()
