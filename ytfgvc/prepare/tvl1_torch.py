"""TV-L1 optical flow in PyTorch, batched over many frame pairs, on CUDA or the CPU.

The scheme is the one OpenCV's ``cv2.optflow.DualTVL1OpticalFlow`` implements (Zach, Pock
and Bischof 2007, in the form of Sánchez, Meinhardt-Llopis and Facciolo 2013), with the same
parameter names, meanings and defaults, so that flows from the two backends are comparable:

* a pyramid of ``nscales`` levels, each the previous one resized by ``scaleStep`` with
  bilinear interpolation (a level smaller than 16 pixels on a side ends the pyramid);
* from the coarsest level to the finest, ``warps`` warpings per level: the second image and
  its central-difference gradient are warped by the current flow (bicubic, zero outside);
* per warping, up to ``outerIterations`` x ``innerIterations`` primal-dual iterations: the
  thresholding step with ``lambda * theta``, the primal update with ``theta`` times the
  divergence of the dual field, and the dual update with ``tau / theta`` on forward
  differences; a median filter of size ``medianFiltering`` before every outer iteration;
  a pair stops iterating once the squared change of its flow, summed over the level, falls
  to ``epsilon**2`` times the level's pixel count;
* ``gamma`` > 0 adds OpenCV's illumination-change term (a third primal variable).

Intensities are on the 0-255 scale of 8-bit images, as in OpenCV (``lambda`` is tuned for it).
Every step is a tensor operation over the whole batch. OpenCV's ``epsilon`` test is applied
to each pair at every iteration, as in OpenCV: a pair that meets it is frozen (exactly as if
it had stopped) while the others go on. Every ``sync_every`` iterations the host looks at how
many pairs are left (the loop's only synchronisation): none ends the warping, and when a
quarter or more have stopped they are dropped from the working batch, so finished pairs cost
nothing. The result does not depend on ``sync_every`` or on the batch composition (up to
rounding).

``compile=True`` runs the iteration and the median filter through ``torch.compile`` (one or
two fused kernels per iteration instead of ~25; the median becomes a sort-free min/max
network). All arithmetic is float32, as OpenCV's (float64 if the inputs are); there are no
matrix products or convolutions, so TF32 settings change nothing.

``kernel="triton"`` runs each level on the fused kernels of :mod:`ytfgvc.prepare.tvl1_triton`
instead (one kernel per iteration, the stopping test on the device, no compaction; CUDA,
float32, ``gamma == 0``): the same flow up to float rounding. This module's tensor code
stays the reference, and the default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ytfgvc.prepare.tvl1_ops import (
    centered_gradient,
    image_pyramid,
    median_filter,
    median_filter_network,
    resize_linear,
    warp_bicubic,
)


@dataclass(frozen=True)
class TVL1Params:
    """The parameters of ``cv2.optflow.DualTVL1OpticalFlow``, with its names and defaults (OpenCV 5.0).

    Attributes:
        tau: time step of the dual update (OpenCV uses ``tau / theta`` on the dual variable).
        lambda_: weight of the data term; smaller gives smoother flow.
        theta: coupling between the flow and its thresholded copy.
        nscales: number of pyramid levels (fewer if a level would be under 16 px on a side).
        warps: warpings of the second image per level.
        epsilon: stopping threshold on the flow's change between iterations.
        innerIterations: iterations between two median filterings.
        outerIterations: median filterings (outer loops) per warping.
        scaleStep: size ratio between consecutive pyramid levels, in (0, 1).
        gamma: weight of the illumination-change term (0 turns it off).
        medianFiltering: side of the median filter applied to the flow (<= 1 turns it off).
        useInitialFlow: start from the flow passed in rather than zero.
    """

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    innerIterations: int = 30  # noqa: N815 (OpenCV's name)
    outerIterations: int = 10  # noqa: N815
    scaleStep: float = 0.8  # noqa: N815
    gamma: float = 0.0
    medianFiltering: int = 5  # noqa: N815
    useInitialFlow: bool = False  # noqa: N815

    def __post_init__(self) -> None:
        problems = []
        for name in ("tau", "lambda_", "theta"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0 (got {getattr(self, name)})")
        for name in ("nscales", "warps", "innerIterations", "outerIterations"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be an integer >= 1 (got {value!r})")
        if not self.epsilon >= 0:
            problems.append(f"epsilon must be >= 0 (got {self.epsilon})")
        if not 0 < self.scaleStep < 1:
            problems.append(f"scaleStep must be in (0, 1) (got {self.scaleStep})")
        if not self.gamma >= 0:
            problems.append(f"gamma must be >= 0 (got {self.gamma})")
        if self.medianFiltering > 1 and self.medianFiltering % 2 == 0:
            problems.append(f"medianFiltering must be odd or <= 1 (got {self.medianFiltering})")
        if problems:
            raise ValueError("invalid TV-L1 parameters: " + "; ".join(problems))

    def opencv(self):
        """An OpenCV ``DualTVL1OpticalFlow`` with these parameters (a fresh one: OpenCV's keeps state)."""
        import cv2

        algo = cv2.optflow.DualTVL1OpticalFlow_create()
        algo.setTau(self.tau)
        algo.setLambda(self.lambda_)
        algo.setTheta(self.theta)
        algo.setScalesNumber(self.nscales)
        algo.setWarpingsNumber(self.warps)
        algo.setEpsilon(self.epsilon)
        algo.setInnerIterations(self.innerIterations)
        algo.setOuterIterations(self.outerIterations)
        algo.setScaleStep(self.scaleStep)
        algo.setGamma(self.gamma)
        algo.setMedianFiltering(self.medianFiltering)
        algo.setUseInitialFlow(self.useInitialFlow)
        return algo


# ---------------------------------------------------------------- the primal-dual iteration


def primal_dual_step(
    u: torch.Tensor,
    dual: torch.Tensor,
    gw: torch.Tensor,
    rho_c: torch.Tensor,
    neg_inv_grad: torch.Tensor,
    active: torch.Tensor,
    scaled_eps: torch.Tensor,
    l_t: float,
    theta: float,
    taut: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One TV-L1 iteration for every pair; pairs not ``active`` keep their values.

    Args:
        u: flow (N, C, H, W); C = 2, or 3 with the illumination term.
        dual: dual variables (N, C, 2, H, W) (x and y component per flow channel).
        gw: the data term's gradient (N, C, H, W): warped d/dx, d/dy of the second image (and gamma).
        rho_c: the constant part of the linearised residual (N, 1, H, W).
        neg_inv_grad: -1 / |grad I1w|^2 (N, 1, H, W).
        active: (N,) bool, the pairs still iterating.
        scaled_eps: (0-dim tensor) a pair stops once its summed squared flow change is at most this.
        l_t: lambda * theta; theta: theta; taut: tau / theta.

    Returns:
        The new ``u``, ``dual`` and ``active`` (new tensors; the inputs are not modified).
    """
    # Few whole-tensor kernels, in place on temporaries only (torch.compile fuses them further).
    # Stopped pairs are frozen by scaling their updates by 0 (exact: u + 0 = u, p / 1 = p).
    keep = active.to(u.dtype).view(-1, 1, 1, 1)
    # thresholding (TH): v = u + clamp(-rho / |grad|^2, -l_t, l_t) * grad
    rho = torch.addcmul(rho_c, gw[:, :1], u[:, :1])
    for c in range(1, u.shape[1]):
        rho.addcmul_(gw[:, c : c + 1], u[:, c : c + 1])
    coef = rho.mul_(neg_inv_grad).clamp_(-l_t, l_t)
    # u = v + theta * div(p); backward differences, zero before the first row/column
    px, py = dual[:, :, 0], dual[:, :, 1]
    div = px + py
    div[..., 1:].sub_(px[..., :-1])
    div[..., 1:, :].sub_(py[..., :-1, :])
    change = torch.addcmul(div.mul_(theta), coef, gw)
    u_new = torch.addcmul(u, keep, change)
    # p = (p + taut * grad u) / (1 + taut * |grad u|); forward differences, zero on the last row/column
    ux = F.pad(u_new[..., 1:] - u_new[..., :-1], (0, 1))
    uy = F.pad(u_new[..., 1:, :] - u_new[..., :-1, :], (0, 0, 0, 1))
    step = (keep * taut).unsqueeze(-1)
    denom = torch.hypot(ux, uy).unsqueeze(2).mul_(step).add_(1)
    dual_new = torch.addcmul(dual, step, torch.stack((ux, uy), 2)).div_(denom)
    err = torch.linalg.vector_norm(change, dim=(1, 2, 3)).square()
    return u_new, dual_new, active & (err > scaled_eps)


StepFn = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
MedianFn = Callable[[torch.Tensor, int], torch.Tensor]
DEFAULT_COMPILE_MODE = "max-autotune-no-cudagraphs"
_COMPILED: dict[str, tuple[StepFn, MedianFn]] = {}


def kernels(compile: bool | str = False) -> tuple[StepFn, MedianFn]:  # noqa: A002
    """The iteration and median functions: eager, or through ``torch.compile`` (True or a mode name).

    Compiled functions are made once per process and mode; each new image size or batch size
    may compile again (once dynamic shapes kick in, rarely).
    """
    if not compile:
        return primal_dual_step, median_filter
    mode = compile if isinstance(compile, str) else DEFAULT_COMPILE_MODE
    if mode not in _COMPILED:
        _COMPILED[mode] = (
            torch.compile(primal_dual_step, mode=mode),
            torch.compile(median_filter_network, mode=mode),
        )
    return _COMPILED[mode]


# ---------------------------------------------------------------- the solver


class _WorkingSet:
    """The pairs of a batch still iterating in one warping, gathered so that stopped pairs cost nothing.

    ``u``, ``dual`` and ``data`` hold the pairs in ``index`` (all, while ``index`` is None); the
    whole batch's flow and dual variables are brought up to date by :meth:`finish`.
    """

    def __init__(self, u: torch.Tensor, dual: torch.Tensor, data: tuple[torch.Tensor, ...], count: bool):
        self.full_u, self.full_dual = u, dual
        self.u, self.dual, self.data = u, dual, data
        self.index: torch.Tensor | None = None
        self.active = torch.ones(u.shape[0], dtype=torch.bool, device=u.device)
        self.counts = torch.zeros(u.shape[0], dtype=torch.int32, device=u.device) if count else None

    def count(self) -> None:
        """Add one iteration to each active pair's count (only when counting)."""
        if self.counts is None:
            return
        if self.index is None:
            self.counts += self.active
        else:
            self.counts.index_add_(0, self.index, self.active.to(torch.int32))

    def compact(self) -> None:
        """Keep only the active pairs."""
        keep = self.active.nonzero().squeeze(1)
        self._write_back()
        self.index = keep if self.index is None else self.index[keep]
        self.u, self.dual = self.full_u[self.index], self.full_dual[self.index]
        self.data = tuple(t[keep] for t in self.data)
        self.active = self.active[keep]

    def _write_back(self) -> None:
        if self.index is None:
            self.full_u, self.full_dual = self.u, self.dual
        else:
            self.full_u.index_copy_(0, self.index, self.u)
            self.full_dual.index_copy_(0, self.index, self.dual)

    def finish(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole batch's flow and dual variables."""
        self._write_back()
        return self.full_u, self.full_dual


def _solve_level(
    i0: torch.Tensor,
    i1: torch.Tensor,
    u: torch.Tensor,
    params: TVL1Params,
    step: StepFn,
    median: MedianFn,
    sync_every: int,
    stats: dict | None,
) -> torch.Tensor:
    """All warpings at one pyramid level; ``u`` (N, C, H, W) is the flow from the coarser level."""
    n, _, h, w = i0.shape
    scaled_eps = torch.tensor(params.epsilon**2 * h * w, dtype=u.dtype, device=u.device)
    l_t, taut, theta = params.lambda_ * params.theta, params.tau / params.theta, params.theta
    i1x, i1y = centered_gradient(i1)
    src = torch.cat([i1, i1x, i1y], 1)
    dual = u.new_zeros(n, u.shape[1], 2, h, w)
    # Where |grad|^2 is 0, -rho * (-1 / tiny) saturates at +-l_t, which is OpenCV's result there.
    tiny = torch.finfo(u.dtype).tiny ** 0.5
    for _ in range(params.warps):
        i1w, i1wx, i1wy = warp_bicubic(src, u[:, :2]).split(1, 1)
        rho_c = i1w - i1wx * u[:, :1] - i1wy * u[:, 1:2] - i0
        neg_inv_grad = -1 / (i1wx * i1wx + i1wy * i1wy).clamp_min(tiny)
        gw = torch.cat([i1wx, i1wy] + ([torch.full_like(i1wx, params.gamma)] if u.shape[1] == 3 else []), 1)
        ws = _WorkingSet(u, dual, (gw, rho_c, neg_inv_grad), count=stats is not None)
        iterations, done = 0, False
        for _ in range(params.outerIterations):
            if params.medianFiltering > 1:
                smoothed = median(ws.u[:, :2], params.medianFiltering)
                ws.u = torch.cat([torch.where(ws.active.view(-1, 1, 1, 1), smoothed, ws.u[:, :2]), ws.u[:, 2:]], 1)
            for _ in range(params.innerIterations):
                ws.count()
                ws.u, ws.dual, ws.active = step(ws.u, ws.dual, *ws.data, ws.active, scaled_eps, l_t, theta, taut)
                iterations += 1
                if sync_every and iterations % sync_every == 0:
                    left = int(ws.active.sum())  # the loop's one host synchronisation
                    if left == 0:
                        done = True
                        break
                    if left <= 0.75 * len(ws.active):
                        ws.compact()
            if done:
                break
        u, dual = ws.finish()
        if stats is not None:
            stats.setdefault("warps", []).append(
                {"size": (h, w), "batch_iterations": iterations, "pair_iterations": ws.counts.tolist()}
            )
    return u


KERNELS = ("torch", "triton")


def _kernel_solver(kernel: str, device: torch.device, dtype: torch.dtype, gamma: float, triton_config=None) -> Callable:
    """``solve(i0, i1, u, params, compile, sync_every, stats)`` for one pyramid level, by ``kernel``."""
    if kernel == "torch":

        def solve(i0, i1, u, params, compile, sync_every, stats):  # noqa: A002
            step, median = kernels(compile)
            return _solve_level(i0, i1, u, params, step, median, sync_every, stats)

        return solve
    if kernel == "triton":
        from ytfgvc.prepare.tvl1_triton import solve_level_triton, unsupported_reason

        reason = unsupported_reason(torch.device(device), dtype, gamma)
        if reason:
            raise ValueError(f"kernel='triton': {reason}")
        return lambda i0, i1, u, params, compile, sync_every, stats: solve_level_triton(  # noqa: A006
            i0, i1, u, params, sync_every, stats, triton_config
        )
    raise ValueError(f"kernel must be one of {', '.join(KERNELS)} (got {kernel!r})")


def tvl1_flow(
    i0: torch.Tensor,
    i1: torch.Tensor,
    params: TVL1Params | None = None,
    *,
    initial_flow: torch.Tensor | None = None,
    sync_every: int = 5,
    compile: bool | str = False,  # noqa: A002
    stats: dict | None = None,
    kernel: str = "torch",
    triton_config=None,
) -> torch.Tensor:
    """TV-L1 flow from ``i0`` to ``i1`` for a batch of pairs, on their device.

    Args:
        i0: first images (N, 1, H, W), uint8 or float on the 0-255 scale; float64 computes in float64.
        i1: second images, same shape.
        params: the OpenCV parameters (defaults if None).
        initial_flow: (N, 2, H, W) starting flow, used when ``params.useInitialFlow``.
        sync_every: iterations between checks that every pair has stopped (the loop's only
            host synchronisation); 0 never checks and always runs the maximum iterations
            (the result is the same: stopped pairs are frozen either way).
        compile: run the iteration and the median filter through ``torch.compile`` (True, or a
            mode name such as "default"; True means "max-autotune-no-cudagraphs"). Same
            results, fused kernels: much faster on a GPU after the first call compiles.
        stats: if a dict, receives ``warps``: per warping, the level ``size``, the iterations the
            batch ran (``batch_iterations``) and those each pair needed (``pair_iterations``).
        kernel: "torch" (the reference: tensor operations, optionally compiled) or "triton" (the
            fused kernels of :mod:`ytfgvc.prepare.tvl1_triton`: float32, ``gamma == 0``, CUDA or
            Triton's interpreter; ``compile`` is then ignored). Same flow up to float rounding.
        triton_config: launch settings of the Triton kernels (a ``tvl1_triton.TritonConfig``;
            None for the defaults).

    Returns:
        (N, 2, H, W) flow in pixels, x then y: ``i0[y, x] ~ i1[y + v, x + u]``.
    """
    params = params or TVL1Params()
    if i0.dim() != 4 or i0.shape[1] != 1 or i0.shape != i1.shape:
        raise ValueError(f"expected two (N, 1, H, W) tensors of one shape, got {tuple(i0.shape)} and {tuple(i1.shape)}")
    if min(i0.shape[-2:]) < 3:
        raise ValueError(f"images must be at least 3x3 pixels, got {tuple(i0.shape[-2:])}")
    dtype = i0.dtype if i0.dtype.is_floating_point else torch.float32
    solve = _kernel_solver(kernel, i0.device, dtype, params.gamma, triton_config)
    levels = image_pyramid(torch.cat([i0, i1], 1).to(dtype), params.nscales, params.scaleStep)
    n, (h, w) = i0.shape[0], levels[-1].shape[-2:]
    channels = 3 if params.gamma != 0 else 2
    u = i0.new_zeros((n, channels, h, w), dtype=dtype)
    if params.useInitialFlow:
        if initial_flow is None or initial_flow.shape != (n, 2, *i0.shape[-2:]):
            raise ValueError("useInitialFlow needs initial_flow of shape (N, 2, H, W)")
        flow = initial_flow.to(dtype)
        for level in levels[1:]:  # only the coarsest level's copy is used, as in OpenCV
            flow = resize_linear(flow, level.shape[-2:], (1 / params.scaleStep,) * 2) * params.scaleStep
        u[:, :2] = flow
    for s in range(len(levels) - 1, -1, -1):
        u = solve(levels[s][:, :1], levels[s][:, 1:], u, params, compile, sync_every, stats)
        if s:
            u = resize_linear(u, levels[s - 1].shape[-2:])
            u[:, :2] /= params.scaleStep  # the illumination term is not a displacement
    return u[:, :2]


def default_device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class TorchTVL1:
    """The torch flow backend: ``compute(prev, next)`` on uint8 numpy frames, in batches on ``device``.

    Constructed with OpenCV's ``DualTVL1OpticalFlow`` parameter names and defaults; the extra
    arguments say where and how to run.

    Args:
        device: torch device (default: CUDA if present, else CPU).
        batch_size: pairs per batch on the device (roughly 15 MB each at 340x256; the benchmark prints the peak).
        sync_every: see :func:`tvl1_flow`.
        compile: ``torch.compile`` the iteration (False, True, or a compile mode name).
        kernel: "torch" (the reference) or "triton" (fused kernels; see :func:`tvl1_flow`).
    """

    def __init__(
        self,
        tau: float = 0.25,
        lambda_: float = 0.15,
        theta: float = 0.3,
        nscales: int = 5,
        warps: int = 5,
        epsilon: float = 0.01,
        innerIterations: int = 30,  # noqa: N803 (OpenCV's names)
        outerIterations: int = 10,  # noqa: N803
        scaleStep: float = 0.8,  # noqa: N803
        gamma: float = 0.0,
        medianFiltering: int = 5,  # noqa: N803
        useInitialFlow: bool = False,  # noqa: N803
        device: str | torch.device | None = None,
        batch_size: int = 64,
        sync_every: int = 5,
        compile: bool | str = False,
        kernel: str = "torch",
    ):
        self.params = TVL1Params(
            tau, lambda_, theta, nscales, warps, epsilon, innerIterations, outerIterations, scaleStep, gamma,
            medianFiltering, useInitialFlow,
        )  # fmt: skip
        if batch_size < 1 or sync_every < 0:
            raise ValueError(f"batch_size must be >= 1 and sync_every >= 0 (got {batch_size}, {sync_every})")
        self.device = torch.device(device) if device is not None else default_device()
        self.batch_size = batch_size
        self.sync_every = sync_every
        self.compile = compile
        _kernel_solver(kernel, self.device, torch.float32, gamma)  # fails now, not at the first batch
        self.kernel = kernel

    def config(self) -> dict:
        """The parameters as a plain dict (for the record written beside the flow)."""
        return {**asdict(self.params), "backend": "torch", "device": str(self.device), "kernel": self.kernel}

    def compute(self, prev: np.ndarray, next: np.ndarray, flow: np.ndarray | None = None) -> np.ndarray:  # noqa: A002
        """Flow from each ``prev[i]`` to ``next[i]``.

        Args:
            prev: (N, H, W) uint8 grayscale frames.
            next: (N, H, W) uint8 grayscale frames.
            flow: (N, H, W, 2) initial flow, used when ``useInitialFlow``.

        Returns:
            (N, H, W, 2) float32 displacement in pixels (x, y), as OpenCV's ``calc``.
        """
        prev, next = np.asarray(prev), np.asarray(next)  # noqa: A001
        if prev.ndim != 3 or prev.shape != next.shape or prev.dtype != np.uint8 or next.dtype != np.uint8:
            raise ValueError(
                f"expected two uint8 (N, H, W) arrays of one shape, got {prev.dtype}{prev.shape} and "
                f"{next.dtype}{next.shape}"
            )
        out = np.empty((*prev.shape, 2), np.float32)
        for start in range(0, len(prev), self.batch_size):
            end = start + self.batch_size
            a = torch.from_numpy(prev[start:end]).to(self.device).unsqueeze(1)
            b = torch.from_numpy(next[start:end]).to(self.device).unsqueeze(1)
            init = None
            if flow is not None:
                init = torch.from_numpy(np.ascontiguousarray(flow[start:end])).to(self.device).permute(0, 3, 1, 2)
            result = tvl1_flow(
                a, b, self.params, initial_flow=init, sync_every=self.sync_every, compile=self.compile,
                kernel=self.kernel,
            )  # fmt: skip
            out[start:end] = result.permute(0, 2, 3, 1).float().cpu().numpy()
        return out


# --------------------------------------------------------------------------- registry adapter

# The `--flow-param` names of `prepare --flow-backend torch`: OpenCV's (its misspelt
# "innnerIterations" included, so one set of parameters drives both backends), plus where and
# how to run: `kernel=triton` selects the fused Triton kernels (CUDA only).
TORCH_BACKEND_DEFAULTS: dict = {
    **{("innnerIterations" if k == "innerIterations" else k): v for k, v in asdict(TVL1Params()).items()},
    "device": "auto",
    "batch_size": 64,
    "kernel": "torch",
}


def worker_device(worker_index: int | None) -> torch.device:
    """``auto``: the CPU without CUDA, else GPU ``worker_index mod count`` (one process per GPU by default)."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", (worker_index or 0) % torch.cuda.device_count())


def _register() -> None:
    from ytfgvc.prepare.flow import (
        FlowBackend,
        check_pair_batch,
        check_params,
        current_worker_index,
        register_flow_backend,
    )

    @register_flow_backend("torch")
    class TorchFlowBackend(FlowBackend):
        """TV-L1 in PyTorch (this module), batched on a GPU when present; OpenCV's parameters."""

        name = "torch"

        def __init__(self, **params) -> None:
            resolved = check_params(self.name, params, TORCH_BACKEND_DEFAULTS)
            if resolved["batch_size"] < 1:
                from ytfgvc.errors import YtfgvcError

                raise YtfgvcError(f"--flow-param batch_size must be at least 1, got {resolved['batch_size']}")
            super().__init__(**resolved)
            device = resolved["device"]
            self.device = worker_device(current_worker_index()) if device == "auto" else torch.device(device)
            self.batch_size = resolved["batch_size"]
            kw = {("innerIterations" if k == "innnerIterations" else k): v for k, v in resolved.items()}
            kw.update(device=self.device)
            try:
                self._impl = TorchTVL1(**kw)
            except ValueError as e:
                from ytfgvc.errors import YtfgvcError

                raise YtfgvcError(f"--flow-param: {e}") from None

        def compute(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:  # noqa: A002
            check_pair_batch(prev, next)
            return self._impl.compute(prev, next)


_register()
