"""``ytfgvc doctor``: is this machine ready to download, prepare and train? What to install if not.

Each check gives a level: ``ok``; ``warn`` (a part of ytfgvc will not work, or not
well: say what to install); ``fail`` (ytfgvc itself cannot work). Nothing here touches
the network.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import importlib.util
import platform
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# yt-dlp follows YouTube's changes; a release older than this often cannot download.
YTDLP_MAX_AGE_DAYS = 90
MIN_FREE_GB = 20.0


@dataclass
class Check:
    name: str
    level: str  # ok | warn | fail
    found: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _version_of(exe: str) -> str:
    """First line of ``exe --version`` (arg list, no shell, 10 s cap)."""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
        lines = (out.stdout or out.stderr).strip().splitlines()
        return lines[0] if lines else "unknown version"
    except (OSError, subprocess.SubprocessError) as e:
        return f"present, but `{exe} --version` failed ({e.__class__.__name__})"


def check_python() -> Check:
    return Check("python", "ok", platform.python_version())


def check_ytdlp(today: _dt.date | None = None) -> Check:
    try:
        import yt_dlp
    except ImportError:
        return Check("yt-dlp", "fail", "not installed", 'pip install -U "yt-dlp[default]"')
    version = yt_dlp.version.__version__
    try:
        released = _dt.date(*map(int, version.split(".")[:3]))
    except (TypeError, ValueError):
        return Check("yt-dlp", "ok", version)
    age = ((today or _dt.date.today()) - released).days
    if age > YTDLP_MAX_AGE_DAYS:
        return Check(
            "yt-dlp",
            "warn",
            f"{version} ({age} days old)",
            'pip install -U "yt-dlp[default]" (YouTube changes often; old releases fail)',
        )
    return Check("yt-dlp", "ok", f"{version} ({age} days old)")


def check_js_runtime() -> Check:
    from ytfgvc.download.ytdlp import js_runtimes_found

    install = (
        'pip install -U "yt-dlp[default,deno]" (or deno from https://deno.com); '
        "yt-dlp needs a JavaScript runtime to solve YouTube's challenges"
    )
    found = js_runtimes_found()
    usable = [f for f in found if f[3]]
    if usable:
        name, path, version, _ = usable[0]
        return Check("JavaScript runtime", "ok", f"{name} {version} at {path} (ytfgvc enables it for yt-dlp)")
    if found:
        seen = ", ".join(f"{n} {v}" for n, _p, v, _ok in found)
        return Check("JavaScript runtime", "warn", f"{seen}: too old for yt-dlp", install)
    return Check("JavaScript runtime", "warn", "none of deno, node, bun, quickjs found", install)


def check_ejs() -> Check:
    if importlib.util.find_spec("yt_dlp_ejs") is None:
        return Check(
            "yt-dlp-ejs",
            "warn",
            "not installed",
            'pip install -U "yt-dlp[default]" (the challenge solver scripts yt-dlp runs for YouTube)',
        )
    try:
        version = importlib.metadata.version("yt-dlp-ejs")
    except importlib.metadata.PackageNotFoundError:
        version = "installed"
    return Check("yt-dlp-ejs", "ok", version)


def ytdlp_plugins() -> dict[str, list[str]]:
    """What yt-dlp loads from its plugin folders: the folders, extractor and post-processor plugins,
    and the PO token providers those plugins register (``yt_dlp_plugins`` packages, see yt-dlp's README)."""
    from yt_dlp.globals import plugin_ies, plugin_pps
    from yt_dlp.plugins import directories, load_all_plugins

    load_all_plugins()
    return {
        "directories": list(directories()),
        "extractors": sorted(plugin_ies.value),
        "postprocessors": sorted(plugin_pps.value),
        "pot_providers": _pot_providers(),
    }


def _pot_providers() -> list[str]:
    """``name version`` of each registered PO token provider (yt-dlp keeps the list in an internal module)."""
    try:
        from yt_dlp.extractor.youtube.pot._registry import _pot_providers as registry
    except ImportError:  # moved in another yt-dlp: nothing to list
        return []
    return sorted(f"{cls.PROVIDER_NAME} {cls.PROVIDER_VERSION}" for cls in registry.value.values())


def check_ytdlp_plugins() -> Check:
    """yt-dlp's plugins, PO token providers first (optional: listed so a user sees what yt-dlp will use)."""
    try:
        found = ytdlp_plugins()
    except ImportError:
        return Check("yt-dlp plugins", "ok", "yt-dlp not installed")
    parts = [
        f"{label}: {', '.join(found[key])}"
        for key, label in (
            ("pot_providers", "PO token providers"),
            ("extractors", "extractors"),
            ("postprocessors", "post-processors"),
        )  # fmt: skip
        if found[key]
    ]
    if not parts:
        return Check("yt-dlp plugins", "ok", "none (a PO token provider plugin helps when YouTube wants PO tokens)")
    return Check("yt-dlp plugins", "ok", "; ".join(parts) + f" (from {', '.join(found['directories']) or '?'})")


def check_pyav() -> Check:
    try:
        import av
    except ImportError:
        return Check("PyAV", "fail", "not installed", "pip install av")
    if "h264" not in av.codecs_available:
        return Check("PyAV", "fail", f"{av.__version__} without an H.264 decoder", "pip install --force-reinstall av")
    return Check("PyAV", "ok", f"{av.__version__} (H.264 decoder present)")


def check_ffmpeg() -> Check:
    path = shutil.which("ffmpeg")
    if not path:
        return Check(
            "ffmpeg CLI",
            "warn",
            "not on PATH (PyAV does the decoding; yt-dlp uses ffmpeg for some fix-ups and benchmarks compare with it)",
            "apt-get install ffmpeg (or conda install ffmpeg)",
        )
    return Check("ffmpeg CLI", "ok", _version_of(path))


def check_tvl1() -> Check:
    try:
        import cv2
    except ImportError:
        return Check("OpenCV TV-L1", "warn", "OpenCV not installed", "pip install opencv-contrib-python-headless")
    if not hasattr(getattr(cv2, "optflow", None), "DualTVL1OpticalFlow_create"):
        return Check(
            "OpenCV TV-L1",
            "warn",
            f"OpenCV {cv2.__version__} without cv2.optflow (contrib modules)",
            "pip uninstall opencv-python opencv-python-headless && pip install opencv-contrib-python-headless "
            "(needed by `ytfgvc prepare --flow`)",
        )
    return Check("OpenCV TV-L1", "ok", f"OpenCV {cv2.__version__}: cv2.optflow.DualTVL1OpticalFlow_create")


def check_torch() -> Check:
    try:
        import torch
    except ImportError:
        return Check("torch", "fail", "not installed", "pip install torch torchvision")
    if not torch.cuda.is_available():
        return Check(
            "torch",
            "warn",
            f"{torch.__version__}, no CUDA GPU (training runs on the CPU: only the smoke preset is practical)",
            "install a CUDA build of torch on a machine with an NVIDIA GPU (https://pytorch.org)",
        )
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    found = f"{torch.__version__}, CUDA {torch.version.cuda}, {len(gpus)} GPU(s): {', '.join(gpus)}"
    return Check("torch", "ok", found)


def check_ray() -> Check:
    """Ray, for ``--executor ray`` (optional: without it, download and prepare run on this machine)."""
    try:
        version = importlib.metadata.version("ray")
    except importlib.metadata.PackageNotFoundError:
        return Check(
            "ray",
            "warn",
            "not installed: --executor ray (download/prepare on a cluster) unavailable",
            "pip install 'ytfgvc[ray]' (the same version on every node of the cluster)",
        )
    return Check("ray", "ok", f"{version} (--executor ray)")


def check_disk(root: Path) -> Check:
    where = Path(root).resolve()
    while not where.exists() and where != where.parent:
        where = where.parent
    free_gb = shutil.disk_usage(where).free / 1e9
    found = f"{free_gb:.1f} GB free at {where}"
    if free_gb < MIN_FREE_GB:
        return Check("disk", "warn", found, "free space, or choose another --root: a real dataset takes tens of GB")
    return Check("disk", "ok", found)


def run_checks(root: Path) -> list[Check]:
    """Every check, in the order a user fixes things."""
    checks: list[Callable[[], Check]] = [
        check_python,
        check_ytdlp,
        check_js_runtime,
        check_ejs,
        check_ytdlp_plugins,
        check_pyav,
        check_ffmpeg,
        check_tvl1,
        check_torch,
        check_ray,
        lambda: check_disk(root),
    ]
    return [c() for c in checks]


def render(checks: list[Check]) -> str:
    mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    width = max(len(c.name) for c in checks)
    lines = [f"[{mark[c.level]}] {c.name:<{width}}  {c.found}" for c in checks]
    fixes = [c for c in checks if c.level != "ok"]
    if fixes:
        lines += ["", "to fix:"] + [f"  {c.name}: {c.fix}" for c in fixes]
    else:
        lines += ["", "everything ytfgvc uses is here"]
    return "\n".join(lines)
