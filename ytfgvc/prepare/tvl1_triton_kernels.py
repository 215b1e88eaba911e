"""Triton kernels of the fused TV-L1 path (``kernel="triton"``); the host side is ``tvl1_triton.py``.

Loaded through :func:`ytfgvc.prepare.tvl1_triton.triton_kernels` (once for compiled kernels and
once for Triton's interpreter, ``TRITON_INTERPRET=1``), not imported directly.

Layouts, per pair ``n`` (all float32, contiguous, ``HW = H * W``):

* ``u``: (N, 2, H, W), the flow (x, y);
* ``p``: (N, 4, H, W), the dual variables p11, p12 (of u1: x, y), p21, p22 (of u2);
* ``data``: (N, 3, H, W), the warped gradient of the second image and the constant part of
  the linearised residual: I1wx, I1wy, rho_c = I1w - I1wx * u1 - I1wy * u2 - I0;
* ``err``: (N, T) partial sums of the squared flow change, one per block of ``BLOCK`` pixels
  of the iteration kernel. Their sum is the pair's OpenCV error; -1 marks a pair that stopped
  earlier (see :func:`tvl1_iteration_kernel`).

Every kernel starts by summing the pair's partials of the previous iteration, in a fixed
order (the same result in every program): above ``eps`` the pair iterates; in [0, eps] it has
just stopped; below 0 it stopped before. Stopped pairs' programs do (almost) nothing, so
they cost no memory traffic and the batch never needs compacting.
"""

from __future__ import annotations

import triton
import triton.language as tl


# tl.sum and tl.max are themselves jit functions, which Triton's interpreter can only call if
# TRITON_INTERPRET was set before triton was first imported; tl.reduce with their combine
# functions is what they compile to, and the interpreter runs it in numpy whenever it was set.
@triton.jit
def _sum(x, axis: tl.constexpr):
    return tl.reduce(x, axis, tl.standard._sum_combine)


@triton.jit
def _max(x, axis: tl.constexpr):
    return tl.reduce(x, axis, tl.standard._elementwise_max)


@triton.jit
def _pair_error(err_prev, n, T, T_POW2: tl.constexpr):
    """The summed squared flow change of pair ``n`` in the previous iteration (fixed order)."""
    k = tl.arange(0, T_POW2)
    return _sum(tl.load(err_prev + n * T + k, mask=k < T, other=0.0), axis=0)


@triton.jit
def _updated_flow(u_ptr, d_ptr, off, inside, div1, div2, HW, l_t, theta, tiny):
    """The updated flow (u1, u2) and its change (c1, c2) at offsets ``off``; zeros where not ``inside``.

    The thresholding step, then ``u = v + theta * div(p)`` given the divergence of the dual
    variables, in the reference path's operation order.
    """
    u1 = tl.load(u_ptr + off, mask=inside, other=0.0)
    u2 = tl.load(u_ptr + HW + off, mask=inside, other=0.0)
    gx = tl.load(d_ptr + off, mask=inside, other=0.0)
    gy = tl.load(d_ptr + HW + off, mask=inside, other=0.0)
    rho_c = tl.load(d_ptr + 2 * HW + off, mask=inside, other=0.0)
    rho = rho_c + gx * u1 + gy * u2
    neg_inv_grad = -1.0 / tl.maximum(gx * gx + gy * gy, tiny)
    coef = tl.minimum(tl.maximum(rho * neg_inv_grad, -l_t), l_t)
    c1 = div1 * theta + coef * gx
    c2 = div2 * theta + coef * gy
    return u1 + c1, u2 + c2, c1, c2


@triton.jit(do_not_specialize=["T"])  # one compilation for every level
def tvl1_iteration_kernel(
    u_in, p_in, data, u_out, p_out, err_prev, err_next, flags,
    H, W, T, eps, l_t, theta, taut, tiny,
    BLOCK: tl.constexpr, T_POW2: tl.constexpr,
):  # fmt: skip
    """One primal-dual iteration of every pair still iterating; grid (T, N).

    Reads ``u_in``/``p_in`` and writes ``u_out``/``p_out``, never in place: the updated flow is
    recomputed at the right and lower neighbours for the dual update's forward differences,
    from the inputs (35 loads per pixel, all but the 9 planes' own from the cache). Writes this
    block's partial error to ``err_next`` and, from block 0, whether the pair iterated to
    ``flags``. A pair that has just stopped copies its state to the output buffers once, so
    that afterwards both buffers hold it and nothing more is written.
    """
    t = tl.program_id(0)
    n = tl.program_id(1).to(tl.int64)
    HW = H * W
    s = _pair_error(err_prev, n, T, T_POW2)
    pix = t * BLOCK + tl.arange(0, BLOCK)
    valid = pix < HW
    y = pix // W
    x = pix - y * W
    u_in += n * 2 * HW
    u_out += n * 2 * HW
    p_in += n * 4 * HW
    p_out += n * 4 * HW
    data += n * 3 * HW
    if s > eps:
        # OpenCV's divergence: backward differences, zero before the first row and column. The
        # right and lower neighbours' updated flow (for the forward differences of the dual
        # update) is recomputed here; their left/upper dual values are this pixel's.
        has_left = x > 0
        has_up = y > 0
        has_right = x + 1 < W
        has_down = y + 1 < H
        right = valid & has_right
        down = valid & has_down
        p11 = tl.load(p_in + pix, mask=valid, other=0.0)
        p12 = tl.load(p_in + HW + pix, mask=valid, other=0.0)
        p21 = tl.load(p_in + 2 * HW + pix, mask=valid, other=0.0)
        p22 = tl.load(p_in + 3 * HW + pix, mask=valid, other=0.0)
        p11_left = tl.load(p_in + pix - 1, mask=valid & has_left, other=0.0)
        p21_left = tl.load(p_in + 2 * HW + pix - 1, mask=valid & has_left, other=0.0)
        p12_up = tl.load(p_in + HW + pix - W, mask=valid & has_up, other=0.0)
        p22_up = tl.load(p_in + 3 * HW + pix - W, mask=valid & has_up, other=0.0)
        u1, u2, c1, c2 = _updated_flow(
            u_in, data, pix, valid, p11 + p12 - p11_left - p12_up, p21 + p22 - p21_left - p22_up, HW, l_t, theta, tiny
        )
        r = pix + 1
        p11_r = tl.load(p_in + r, mask=right, other=0.0)
        p12_r = tl.load(p_in + HW + r, mask=right, other=0.0)
        p21_r = tl.load(p_in + 2 * HW + r, mask=right, other=0.0)
        p22_r = tl.load(p_in + 3 * HW + r, mask=right, other=0.0)
        p12_r_up = tl.load(p_in + HW + r - W, mask=right & has_up, other=0.0)
        p22_r_up = tl.load(p_in + 3 * HW + r - W, mask=right & has_up, other=0.0)
        u1_right, u2_right, _, _ = _updated_flow(
            u_in, data, r, right, p11_r + p12_r - p11 - p12_r_up, p21_r + p22_r - p21 - p22_r_up, HW, l_t, theta, tiny
        )
        d = pix + W
        p11_d = tl.load(p_in + d, mask=down, other=0.0)
        p12_d = tl.load(p_in + HW + d, mask=down, other=0.0)
        p21_d = tl.load(p_in + 2 * HW + d, mask=down, other=0.0)
        p22_d = tl.load(p_in + 3 * HW + d, mask=down, other=0.0)
        p11_d_left = tl.load(p_in + d - 1, mask=down & has_left, other=0.0)
        p21_d_left = tl.load(p_in + 2 * HW + d - 1, mask=down & has_left, other=0.0)
        u1_down, u2_down, _, _ = _updated_flow(
            u_in,
            data,
            d,
            down,
            p11_d + p12_d - p11_d_left - p12,
            p21_d + p22_d - p21_d_left - p22,
            HW,
            l_t,
            theta,
            tiny,
        )
        u1x = tl.where(has_right, u1_right - u1, 0.0)
        u1y = tl.where(has_down, u1_down - u1, 0.0)
        u2x = tl.where(has_right, u2_right - u2, 0.0)
        u2y = tl.where(has_down, u2_down - u2, 0.0)
        d1 = tl.sqrt(u1x * u1x + u1y * u1y) * taut + 1.0
        d2 = tl.sqrt(u2x * u2x + u2y * u2y) * taut + 1.0
        tl.store(u_out + pix, u1, mask=valid)
        tl.store(u_out + HW + pix, u2, mask=valid)
        tl.store(p_out + pix, (p11 + taut * u1x) / d1, mask=valid)
        tl.store(p_out + HW + pix, (p12 + taut * u1y) / d1, mask=valid)
        tl.store(p_out + 2 * HW + pix, (p21 + taut * u2x) / d2, mask=valid)
        tl.store(p_out + 3 * HW + pix, (p22 + taut * u2y) / d2, mask=valid)
        err = _sum(tl.where(valid, c1 * c1 + c2 * c2, 0.0), axis=0)
        tl.store(err_next + n * T + t, err)
        if t == 0:
            tl.store(flags + n, 1)
    else:
        if s >= 0:  # stopped after the previous iteration: make both buffers hold the final state
            for c in tl.static_range(2):
                tl.store(u_out + c * HW + pix, tl.load(u_in + c * HW + pix, mask=valid), mask=valid)
            for c in tl.static_range(4):
                tl.store(p_out + c * HW + pix, tl.load(p_in + c * HW + pix, mask=valid), mask=valid)
        tl.store(err_next + n * T + t, -1.0)
        if t == 0:
            tl.store(flags + n, 0)


@triton.jit(do_not_specialize=["T"])  # one compilation for every level
def tvl1_median_rank_kernel(
    u_in, u_out, err_prev, H, W, T, eps,
    BLOCK: tl.constexpr, T_POW2: tl.constexpr, SIZE: tl.constexpr, WINDOW: tl.constexpr,
):  # fmt: skip
    """The SIZE x SIZE median (replicated border, as cv::medianBlur) of both flow channels; grid (tiles, N).

    Pairs still iterating are filtered into ``u_out``; a pair that has just stopped is copied
    there; pairs stopped before are left alone (both buffers already hold their state).
    Any odd SIZE (WINDOW: SIZE * SIZE rounded up to a power of two): the median is the window
    value with at most SIZE * SIZE // 2 values below it and more than that at or below it,
    found by comparing all pairs of values (WINDOW**2 comparisons per pixel; meant for sizes
    other than OpenCV's default 5, which :func:`tvl1_median5_kernel` does with a network).
    """
    t = tl.program_id(0)
    n = tl.program_id(1).to(tl.int64)
    HW = H * W
    s = _pair_error(err_prev, n, T, T_POW2)
    pix = t * BLOCK + tl.arange(0, BLOCK)
    valid = pix < HW
    u_in += n * 2 * HW
    u_out += n * 2 * HW
    if s > eps:
        y = pix // W
        x = pix - y * W
        k = tl.arange(0, WINDOW)
        used = k < SIZE * SIZE
        yy = tl.minimum(tl.maximum(y[:, None] + (k // SIZE - SIZE // 2)[None, :], 0), H - 1)
        xx = tl.minimum(tl.maximum(x[:, None] + (k % SIZE - SIZE // 2)[None, :], 0), W - 1)
        off = yy * W + xx
        for c in tl.static_range(2):
            values = tl.load(u_in + c * HW + off, mask=valid[:, None] & used[None, :], other=0.0)
            mine = values[:, :, None]
            other = values[:, None, :]
            counted = used[None, None, :]
            below = _sum(tl.where(counted & (other < mine), 1, 0), axis=2)
            at_or_below = _sum(tl.where(counted & (other <= mine), 1, 0), axis=2)
            middle = SIZE * SIZE // 2
            is_median = used[None, :] & (below <= middle) & (at_or_below > middle)
            median = _max(tl.where(is_median, values, float("-inf")), axis=1)
            tl.store(u_out + c * HW + pix, median, mask=valid)
    elif s >= 0:
        for c in tl.static_range(2):
            tl.store(u_out + c * HW + pix, tl.load(u_in + c * HW + pix, mask=valid), mask=valid)


@triton.jit
def _cubic_weights(t):
    """Bicubic convolution weights (A = -0.75) of the four taps around a fraction ``t``, as grid_sample."""
    a = -0.75
    x1 = t + 1.0
    w0 = ((a * x1 - 5.0 * a) * x1 + 8.0 * a) * x1 - 4.0 * a
    w1 = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
    x2 = 1.0 - t
    w2 = ((a + 2.0) * x2 - (a + 3.0)) * x2 * x2 + 1.0
    x3 = x2 + 1.0
    w3 = ((a * x3 - 5.0 * a) * x3 + 8.0 * a) * x3 - 4.0 * a
    return w0, w1, w2, w3


@triton.jit
def _cubic_row(ptr, yy, x0, H, W, valid, w0, w1, w2, w3):
    """Row ``yy`` interpolated at ``x0 - 1 .. x0 + 2`` with the weights; taps outside the image are 0."""
    row_in = valid & (yy >= 0) & (yy < H)
    base = yy * W
    v0 = tl.load(ptr + base + x0 - 1, mask=row_in & (x0 - 1 >= 0) & (x0 - 1 < W), other=0.0)
    v1 = tl.load(ptr + base + x0, mask=row_in & (x0 >= 0) & (x0 < W), other=0.0)
    v2 = tl.load(ptr + base + x0 + 1, mask=row_in & (x0 + 1 >= 0) & (x0 + 1 < W), other=0.0)
    v3 = tl.load(ptr + base + x0 + 2, mask=row_in & (x0 + 2 >= 0) & (x0 + 2 < W), other=0.0)
    return v0 * w0 + v1 * w1 + v2 * w2 + v3 * w3


@triton.jit
def _bicubic(ptr, y0, x0, H, W, valid, wx0, wx1, wx2, wx3, wy0, wy1, wy2, wy3):
    r0 = _cubic_row(ptr, y0 - 1, x0, H, W, valid, wx0, wx1, wx2, wx3)
    r1 = _cubic_row(ptr, y0, x0, H, W, valid, wx0, wx1, wx2, wx3)
    r2 = _cubic_row(ptr, y0 + 1, x0, H, W, valid, wx0, wx1, wx2, wx3)
    r3 = _cubic_row(ptr, y0 + 2, x0, H, W, valid, wx0, wx1, wx2, wx3)
    return r0 * wy0 + r1 * wy1 + r2 * wy2 + r3 * wy3


@triton.jit
def tvl1_warp_kernel(src, i0, u, data, H, W, BLOCK: tl.constexpr):
    """The per-warping data term of every pair; grid (tiles, N).

    ``src`` (N, 3, H, W) holds I1 and its central-difference gradient; each is sampled at
    (x + u1, y + u2) with bicubic interpolation, zero outside (as the reference's grid_sample
    and cv::remap), and ``data`` receives I1wx, I1wy and rho_c = I1w - I1wx * u1 - I1wy * u2 - I0.
    """
    t = tl.program_id(0)
    n = tl.program_id(1).to(tl.int64)
    HW = H * W
    pix = t * BLOCK + tl.arange(0, BLOCK)
    valid = pix < HW
    y = pix // W
    x = pix - y * W
    u += n * 2 * HW
    src += n * 3 * HW
    data += n * 3 * HW
    u1 = tl.load(u + pix, mask=valid, other=0.0)
    u2 = tl.load(u + HW + pix, mask=valid, other=0.0)
    # Far outside, every tap is outside: clamping there changes nothing and keeps the int32 cast safe.
    fx = tl.minimum(tl.maximum(x.to(tl.float32) + u1, -4.0), W + 3.0)
    fy = tl.minimum(tl.maximum(y.to(tl.float32) + u2, -4.0), H + 3.0)
    fx0 = tl.floor(fx)
    fy0 = tl.floor(fy)
    x0 = fx0.to(tl.int32)
    y0 = fy0.to(tl.int32)
    wx0, wx1, wx2, wx3 = _cubic_weights(fx - fx0)
    wy0, wy1, wy2, wy3 = _cubic_weights(fy - fy0)
    i1w = _bicubic(src, y0, x0, H, W, valid, wx0, wx1, wx2, wx3, wy0, wy1, wy2, wy3)
    gx = _bicubic(src + HW, y0, x0, H, W, valid, wx0, wx1, wx2, wx3, wy0, wy1, wy2, wy3)
    gy = _bicubic(src + 2 * HW, y0, x0, H, W, valid, wx0, wx1, wx2, wx3, wy0, wy1, wy2, wy3)
    first = tl.load(i0 + n * HW + pix, mask=valid, other=0.0)
    tl.store(data + pix, gx, mask=valid)
    tl.store(data + HW + pix, gy, mask=valid)
    tl.store(data + 2 * HW + pix, i1w - gx * u1 - gy * u2 - first, mask=valid)


@triton.jit
def _median25(
    v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15, v16, v17, v18, v19, v20, v21, v22, v23, v24
):  # noqa: E501
    """The median of 25 values: ``tvl1_ops.median_network(25)`` written out (a test checks the copy)."""
    # BEGIN median_network(25)
    v0, v1 = tl.minimum(v0, v1), tl.maximum(v0, v1)
    v2, v3 = tl.minimum(v2, v3), tl.maximum(v2, v3)
    v4, v5 = tl.minimum(v4, v5), tl.maximum(v4, v5)
    v6, v7 = tl.minimum(v6, v7), tl.maximum(v6, v7)
    v8, v9 = tl.minimum(v8, v9), tl.maximum(v8, v9)
    v10, v11 = tl.minimum(v10, v11), tl.maximum(v10, v11)
    v12, v13 = tl.minimum(v12, v13), tl.maximum(v12, v13)
    v14, v15 = tl.minimum(v14, v15), tl.maximum(v14, v15)
    v16, v17 = tl.minimum(v16, v17), tl.maximum(v16, v17)
    v18, v19 = tl.minimum(v18, v19), tl.maximum(v18, v19)
    v20, v21 = tl.minimum(v20, v21), tl.maximum(v20, v21)
    v22, v23 = tl.minimum(v22, v23), tl.maximum(v22, v23)
    v0, v2 = tl.minimum(v0, v2), tl.maximum(v0, v2)
    v1, v3 = tl.minimum(v1, v3), tl.maximum(v1, v3)
    v4, v6 = tl.minimum(v4, v6), tl.maximum(v4, v6)
    v5, v7 = tl.minimum(v5, v7), tl.maximum(v5, v7)
    v8, v10 = tl.minimum(v8, v10), tl.maximum(v8, v10)
    v9, v11 = tl.minimum(v9, v11), tl.maximum(v9, v11)
    v12, v14 = tl.minimum(v12, v14), tl.maximum(v12, v14)
    v13, v15 = tl.minimum(v13, v15), tl.maximum(v13, v15)
    v16, v18 = tl.minimum(v16, v18), tl.maximum(v16, v18)
    v17, v19 = tl.minimum(v17, v19), tl.maximum(v17, v19)
    v20, v22 = tl.minimum(v20, v22), tl.maximum(v20, v22)
    v21, v23 = tl.minimum(v21, v23), tl.maximum(v21, v23)
    v1, v2 = tl.minimum(v1, v2), tl.maximum(v1, v2)
    v5, v6 = tl.minimum(v5, v6), tl.maximum(v5, v6)
    v9, v10 = tl.minimum(v9, v10), tl.maximum(v9, v10)
    v13, v14 = tl.minimum(v13, v14), tl.maximum(v13, v14)
    v17, v18 = tl.minimum(v17, v18), tl.maximum(v17, v18)
    v21, v22 = tl.minimum(v21, v22), tl.maximum(v21, v22)
    v0, v4 = tl.minimum(v0, v4), tl.maximum(v0, v4)
    v1, v5 = tl.minimum(v1, v5), tl.maximum(v1, v5)
    v2, v6 = tl.minimum(v2, v6), tl.maximum(v2, v6)
    v3, v7 = tl.minimum(v3, v7), tl.maximum(v3, v7)
    v8, v12 = tl.minimum(v8, v12), tl.maximum(v8, v12)
    v9, v13 = tl.minimum(v9, v13), tl.maximum(v9, v13)
    v10, v14 = tl.minimum(v10, v14), tl.maximum(v10, v14)
    v11, v15 = tl.minimum(v11, v15), tl.maximum(v11, v15)
    v16, v20 = tl.minimum(v16, v20), tl.maximum(v16, v20)
    v17, v21 = tl.minimum(v17, v21), tl.maximum(v17, v21)
    v18, v22 = tl.minimum(v18, v22), tl.maximum(v18, v22)
    v19, v23 = tl.minimum(v19, v23), tl.maximum(v19, v23)
    v2, v4 = tl.minimum(v2, v4), tl.maximum(v2, v4)
    v3, v5 = tl.minimum(v3, v5), tl.maximum(v3, v5)
    v10, v12 = tl.minimum(v10, v12), tl.maximum(v10, v12)
    v11, v13 = tl.minimum(v11, v13), tl.maximum(v11, v13)
    v18, v20 = tl.minimum(v18, v20), tl.maximum(v18, v20)
    v19, v21 = tl.minimum(v19, v21), tl.maximum(v19, v21)
    v1, v2 = tl.minimum(v1, v2), tl.maximum(v1, v2)
    v3, v4 = tl.minimum(v3, v4), tl.maximum(v3, v4)
    v5, v6 = tl.minimum(v5, v6), tl.maximum(v5, v6)
    v9, v10 = tl.minimum(v9, v10), tl.maximum(v9, v10)
    v11, v12 = tl.minimum(v11, v12), tl.maximum(v11, v12)
    v13, v14 = tl.minimum(v13, v14), tl.maximum(v13, v14)
    v17, v18 = tl.minimum(v17, v18), tl.maximum(v17, v18)
    v19, v20 = tl.minimum(v19, v20), tl.maximum(v19, v20)
    v21, v22 = tl.minimum(v21, v22), tl.maximum(v21, v22)
    v0, v8 = tl.minimum(v0, v8), tl.maximum(v0, v8)
    v1, v9 = tl.minimum(v1, v9), tl.maximum(v1, v9)
    v2, v10 = tl.minimum(v2, v10), tl.maximum(v2, v10)
    v3, v11 = tl.minimum(v3, v11), tl.maximum(v3, v11)
    v4, v12 = tl.minimum(v4, v12), tl.maximum(v4, v12)
    v5, v13 = tl.minimum(v5, v13), tl.maximum(v5, v13)
    v6, v14 = tl.minimum(v6, v14), tl.maximum(v6, v14)
    v7 = tl.minimum(v7, v15)
    v16, v24 = tl.minimum(v16, v24), tl.maximum(v16, v24)
    v4, v8 = tl.minimum(v4, v8), tl.maximum(v4, v8)
    v5, v9 = tl.minimum(v5, v9), tl.maximum(v5, v9)
    v6, v10 = tl.minimum(v6, v10), tl.maximum(v6, v10)
    v7, v11 = tl.minimum(v7, v11), tl.maximum(v7, v11)
    v20, v24 = tl.minimum(v20, v24), tl.maximum(v20, v24)
    v2, v4 = tl.minimum(v2, v4), tl.maximum(v2, v4)
    v3, v5 = tl.minimum(v3, v5), tl.maximum(v3, v5)
    v6, v8 = tl.minimum(v6, v8), tl.maximum(v6, v8)
    v7, v9 = tl.minimum(v7, v9), tl.maximum(v7, v9)
    v10, v12 = tl.minimum(v10, v12), tl.maximum(v10, v12)
    v11, v13 = tl.minimum(v11, v13), tl.maximum(v11, v13)
    v18, v20 = tl.minimum(v18, v20), tl.maximum(v18, v20)
    v19, v21 = tl.minimum(v19, v21), tl.maximum(v19, v21)
    v22, v24 = tl.minimum(v22, v24), tl.maximum(v22, v24)
    v1, v2 = tl.minimum(v1, v2), tl.maximum(v1, v2)
    v3, v4 = tl.minimum(v3, v4), tl.maximum(v3, v4)
    v5, v6 = tl.minimum(v5, v6), tl.maximum(v5, v6)
    v7, v8 = tl.minimum(v7, v8), tl.maximum(v7, v8)
    v9, v10 = tl.minimum(v9, v10), tl.maximum(v9, v10)
    v11, v12 = tl.minimum(v11, v12), tl.maximum(v11, v12)
    v13 = tl.minimum(v13, v14)
    v17, v18 = tl.minimum(v17, v18), tl.maximum(v17, v18)
    v19, v20 = tl.minimum(v19, v20), tl.maximum(v19, v20)
    v21, v22 = tl.minimum(v21, v22), tl.maximum(v21, v22)
    v23, v24 = tl.minimum(v23, v24), tl.maximum(v23, v24)
    v16 = tl.maximum(v0, v16)
    v17 = tl.maximum(v1, v17)
    v18 = tl.maximum(v2, v18)
    v19 = tl.maximum(v3, v19)
    v20 = tl.maximum(v4, v20)
    v21 = tl.maximum(v5, v21)
    v6 = tl.minimum(v6, v22)
    v7 = tl.minimum(v7, v23)
    v8 = tl.minimum(v8, v24)
    v16 = tl.maximum(v8, v16)
    v17 = tl.maximum(v9, v17)
    v10 = tl.minimum(v10, v18)
    v11 = tl.minimum(v11, v19)
    v12 = tl.minimum(v12, v20)
    v13 = tl.minimum(v13, v21)
    v10 = tl.maximum(v6, v10)
    v11 = tl.maximum(v7, v11)
    v12 = tl.minimum(v12, v16)
    v13 = tl.minimum(v13, v17)
    v12 = tl.maximum(v10, v12)
    v11 = tl.minimum(v11, v13)
    v12 = tl.maximum(v11, v12)
    # END median_network(25)
    return v12


@triton.jit(do_not_specialize=["T"])  # one compilation for every level
def tvl1_median5_kernel(u_in, u_out, err_prev, H, W, T, eps, BLOCK: tl.constexpr, T_POW2: tl.constexpr):
    """:func:`tvl1_median_rank_kernel` for SIZE 5, with a min/max network (113 compare-exchanges)."""
    t = tl.program_id(0)
    n = tl.program_id(1).to(tl.int64)
    HW = H * W
    s = _pair_error(err_prev, n, T, T_POW2)
    pix = t * BLOCK + tl.arange(0, BLOCK)
    valid = pix < HW
    u_in += n * 2 * HW
    u_out += n * 2 * HW
    if s > eps:
        y = pix // W
        x = pix - y * W
        r0 = tl.maximum(y - 2, 0) * W
        r1 = tl.maximum(y - 1, 0) * W
        r2 = y * W
        r3 = tl.minimum(y + 1, H - 1) * W
        r4 = tl.minimum(y + 2, H - 1) * W
        c0 = tl.maximum(x - 2, 0)
        c1 = tl.maximum(x - 1, 0)
        c2 = x
        c3 = tl.minimum(x + 1, W - 1)
        c4 = tl.minimum(x + 2, W - 1)
        for c in tl.static_range(2):
            src = u_in + c * HW
            median = _median25(
                tl.load(src + r0 + c0, mask=valid), tl.load(src + r0 + c1, mask=valid),
                tl.load(src + r0 + c2, mask=valid), tl.load(src + r0 + c3, mask=valid),
                tl.load(src + r0 + c4, mask=valid), tl.load(src + r1 + c0, mask=valid),
                tl.load(src + r1 + c1, mask=valid), tl.load(src + r1 + c2, mask=valid),
                tl.load(src + r1 + c3, mask=valid), tl.load(src + r1 + c4, mask=valid),
                tl.load(src + r2 + c0, mask=valid), tl.load(src + r2 + c1, mask=valid),
                tl.load(src + r2 + c2, mask=valid), tl.load(src + r2 + c3, mask=valid),
                tl.load(src + r2 + c4, mask=valid), tl.load(src + r3 + c0, mask=valid),
                tl.load(src + r3 + c1, mask=valid), tl.load(src + r3 + c2, mask=valid),
                tl.load(src + r3 + c3, mask=valid), tl.load(src + r3 + c4, mask=valid),
                tl.load(src + r4 + c0, mask=valid), tl.load(src + r4 + c1, mask=valid),
                tl.load(src + r4 + c2, mask=valid), tl.load(src + r4 + c3, mask=valid),
                tl.load(src + r4 + c4, mask=valid),
            )  # fmt: skip
            tl.store(u_out + c * HW + pix, median, mask=valid)
    elif s >= 0:
        for c in tl.static_range(2):
            tl.store(u_out + c * HW + pix, tl.load(u_in + c * HW + pix, mask=valid), mask=valid)
