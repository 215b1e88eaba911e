"""Write the TSN model-zoo fixtures of tests/test_models_tsn_weights.py from the authors' own code.

The TSN authors' ImageNet backbones are defined by two YAML files and built by their
``pytorch_load.py`` / ``layer_factory.py`` in the ``tsn-pytorch`` branch of
https://github.com/yjxiong/tensorflow-model-zoo.torch (the ``tf_model_zoo`` submodule of
yjxiong/tsn-pytorch). This script reads those four files from a git clone, builds the authors'
networks with the authors' code (their weight download disabled), and writes, per network,
a compact JSON file:

* ``tensors``: name → shape of every parameter and BatchNorm buffer of the authors' network
  (what their released state dict holds, ``num_batches_tracked`` aside: PyTorch added that
  buffer in 0.4.1, after these files were made); ``head``: the classifier's names among them;
* ``ops``: the graph from the input ``data`` to the end of the trunk, one op per line
  (``[output, op, inputs, params]``), with kernel, stride, padding, pooling mode and
  ``ceil_mode`` read off the modules the authors' code built: enough for a test to run the
  graph directly, without this repository;
* ``source``: repository, branch, commit and file, and the weight URL of ``pytorch_load.py``.

It is not run by the test suite (the clone is not on users' machines). Run it again when the
fixtures are to be remade; it also checks ytfgvc's two backbones against the authors' networks
(same tensor names and shapes, same output on random weights) and stops on a difference::

    python tests/data/make_tsn_zoo_fixtures.py --git-dir /path/to/tensorflow-model-zoo.torch/.git

Needs torch, PyYAML and git; ytfgvc importable for the check (``PYTHONPATH=.``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import torch
import yaml
from torch import nn

REPO = "yjxiong/tensorflow-model-zoo.torch"
BRANCH = "tsn-pytorch"
HERE = Path(__file__).resolve().parent
# fixture file: (class in pytorch_load.py, its yaml, last op of the trunk, ytfgvc's backbone)
NETS = {
    "tsn_inceptionv3_tensors.json": ("InceptionV3", "inceptionv3.yaml", "mixed_10_join", "tsn_inception_v3"),
    "tsn_bninception_tensors.json": ("BNInception", "bn_inception.yaml", "inception_5b_output", "bninception"),
}
CHECK_SIZES = {"tsn_inception_v3": (299, 331), "bninception": (224, 160)}  # input sides the authors' graphs take


def git(git_dir: str, *args: str) -> str:
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True, text=True).stdout


def load_authors_code(git_dir: str, ref: str, workdir: Path) -> types.ModuleType:
    """``bninception/pytorch_load.py`` of ``ref`` as a module (its relative import resolved)."""
    pkg = workdir / "tsn_zoo_bninception"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in ("pytorch_load.py", "layer_factory.py", "inceptionv3.yaml", "bn_inception.yaml"):
        (pkg / name).write_text(git(git_dir, "show", f"{ref}:bninception/{name}"))
    sys.path.insert(0, str(workdir))
    import tsn_zoo_bninception.pytorch_load as pytorch_load

    # yaml.load without a Loader, as the 2017 code calls it, is an error in PyYAML >= 6.
    pytorch_load.yaml = types.SimpleNamespace(load=yaml.safe_load)
    return pytorch_load


def build_authors_net(pytorch_load: types.ModuleType, cls_name: str, yaml_path: Path) -> nn.Module:
    """The authors' network, randomly initialised: their __init__ with the weight download skipped."""
    cls = getattr(pytorch_load, cls_name)
    no_download = type(cls_name, (cls,), {"load_state_dict": lambda self, *a, **k: None})
    real_load_url = torch.utils.model_zoo.load_url
    torch.utils.model_zoo.load_url = lambda *a, **k: {}
    try:
        return no_download(model_path=str(yaml_path))
    finally:
        torch.utils.model_zoo.load_url = real_load_url


def describe(module: nn.Module) -> dict:
    """Kernel, stride, padding, mode of one of the authors' modules (as built by layer_factory.py)."""
    if isinstance(module, nn.Conv2d):
        return {"kernel_size": list(module.kernel_size), "stride": list(module.stride),
                "padding": list(module.padding), "out_channels": module.out_channels}  # fmt: skip
    if isinstance(module, nn.BatchNorm2d):
        return {"eps": module.eps}
    if isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
        params = {"mode": "max" if isinstance(module, nn.MaxPool2d) else "ave"}
        for key in ("kernel_size", "stride", "padding", "ceil_mode"):
            params[key] = getattr(module, key)
        if isinstance(module, nn.AvgPool2d):
            params["count_include_pad"] = module.count_include_pad
        return params
    if isinstance(module, nn.ReLU):
        return {}
    raise ValueError(f"unexpected module {module!r}")


def fixture(net: nn.Module, end: str, source: dict) -> dict:
    tensors = {k: list(v.shape) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    ops = []
    for op_id, op, out, inputs in net._op_list:  # the authors' forward() runs exactly this list
        if op == "Concat":
            ops.append([out, op, list(inputs), {}])
        else:
            ops.append([out, op, [inputs], {"id": op_id, **describe(getattr(net, op_id))}])
        if out == end:
            break
    else:
        raise ValueError(f"{end} is not an output of the graph")
    trunk_ids = {o[3]["id"] for o in ops if "id" in o[3]}
    head = sorted(k for k in tensors if k.rsplit(".", 1)[0] not in trunk_ids)
    return {"source": source, "trunk_end": end, "head": head, "tensors": tensors, "ops": ops}


def dump(data: dict) -> str:
    """JSON with one tensor / one op per line: small, and readable in a diff."""
    lines = ["{"]
    for key in ("source", "trunk_end", "head"):
        lines.append(f"  {json.dumps(key)}: {json.dumps(data[key])},")
    lines.append('  "tensors": {')
    items = list(data["tensors"].items())
    lines += [
        f"    {json.dumps(k)}: {json.dumps(v)}{',' if i < len(items) - 1 else ''}" for i, (k, v) in enumerate(items)
    ]
    lines.append("  },")
    lines.append('  "ops": [')
    ops = data["ops"]
    lines += [f"    {json.dumps(op)}{',' if i < len(ops) - 1 else ''}" for i, op in enumerate(ops)]
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def check_against_ytfgvc(backbone: str, authors: nn.Module, data: dict) -> None:
    """ytfgvc's backbone holds the same tensors and computes the same trunk as the authors' network."""
    from ytfgvc.models.backbones import create_backbone

    torch.manual_seed(0)
    state = {}
    for k, v in authors.state_dict().items():
        if k.endswith("running_var"):
            state[k] = torch.rand_like(v) + 0.5
        elif v.is_floating_point():
            state[k] = torch.randn_like(v) * (0.1 if k.endswith("weight") else 0.5)
    nn.Module.load_state_dict(authors, state, strict=False)  # the class's own is the disabled download
    authors.eval()._op_list = authors._op_list[: len(data["ops"])]  # stop at the trunk's end
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(state, Path(tmp) / "w.pth")
        ours = create_backbone(backbone, weights=Path(tmp) / "w.pth").eval()
    bgr = backbone == "bninception"
    for size in CHECK_SIZES[backbone]:
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            want = authors(x.flip(1) if bgr else x)  # the authors' BN-Inception takes BGR
            got = ours(x)
        err = (want - got).abs().max().item()
        scale = want.abs().max().item()
        print(f"  {backbone} at {size} px: {tuple(got.shape)}, max |ours - theirs| {err:.1e}, max |theirs| {scale:.1e}")
        if got.shape != want.shape or err > 1e-5 * scale:
            sys.exit(f"{backbone} differs from the authors' network at {size} px")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--git-dir", required=True, help=f"git dir of a clone of {REPO}")
    parser.add_argument("--ref", default=f"origin/{BRANCH}", help="the commit or branch to read (default %(default)s)")
    parser.add_argument("--no-check", action="store_true", help="write the fixtures without checking ytfgvc")
    args = parser.parse_args()
    commit = git(args.git_dir, "rev-parse", f"{args.ref}^{{commit}}").strip()
    with tempfile.TemporaryDirectory() as tmp:
        pytorch_load = load_authors_code(args.git_dir, commit, Path(tmp))
        for out_name, (cls_name, yaml_name, end, backbone) in NETS.items():
            yaml_file = f"bninception/{yaml_name}"
            cls = getattr(pytorch_load, cls_name)
            url = inspect.signature(cls.__init__).parameters["weight_url"].default
            source = {"repo": REPO, "branch": BRANCH, "commit": commit, "file": yaml_file,
                      "code": "bninception/pytorch_load.py", "class": cls_name, "weight_url": url}  # fmt: skip
            net = build_authors_net(pytorch_load, cls_name, Path(tmp) / "tsn_zoo_bninception" / yaml_name)
            data = fixture(net, end, source)
            (HERE / out_name).write_text(dump(data))
            print(
                f"wrote {HERE / out_name}: {len(data['tensors'])} tensors, {len(data['ops'])} ops, head {data['head']}"
            )
            if not args.no_check:
                check_against_ytfgvc(backbone, net, data)


if __name__ == "__main__":
    main()
