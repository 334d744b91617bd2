"""A transposed convolution whose forward pass and both gradients are fast on XLA:CPU.

`flax.linen.ConvTranspose` lowers to an lhs-dilated convolution. XLA:CPU computes the *kernel*
gradient of that op with a very slow generic loop (about 11.6 s for 256->128 channels, 16->32 px,
batch 64, where PyTorch needs about 0.5 s), which makes a DCGAN generator step several times slower
than PyTorch's. `conv_transpose` computes exactly the same function but routes every pass through
ops XLA:CPU runs at matmul speed:

* forward: sub-pixel ("depth-to-space") form. Output pixel Y receives x[h] * K[kh] for
  s*h + kh - lo == Y, so writing Y + lo = s*q + r and kh = s*a + r, each of the s*s output phases r
  is a plain stride-1 convolution of x with the taps K[s*a + r]. All phases run as one stride-1
  conv with s*s*out_features output channels, followed by a reshape/transpose and a crop.
* gradients on CPU: with q = h + a, dx[h] = sum_{a,r} g_r[h + a] K[s*a + r] and
  dK[s*a + r] = sum_{b,h} g_r[b, h + a] x[b, h], where g_r are the phases of the cotangent. Both
  are one matmul against the same im2col matrix of g (ceil(k/s)**2 shifted copies of its phases).
  This avoids XLA:CPU's slow conv-weight-gradient kernels entirely (measured faster than the
  strided conv for dx and than any conv formulation for dK).
* gradients elsewhere (GPU/TPU, chosen at lowering time by `lax.platform_dependent`): the input
  gradient is the regular strided conv of the cotangent (the transposed conv is its adjoint) and
  the kernel gradient is the weight gradient of the stride-1 sub-pixel conv, both run natively by
  cuDNN & co. without the im2col copy.

Kernel layout: (kh, kw, out_features, in_features), i.e. the HWIO kernel of the regular strided
convolution `lax.conv_general_dilated(y, kernel, strides, padding, ('NHWC', 'HWIO', 'NHWC'))` that
maps the big (output) image y to the small (input) image; `conv_transpose` is the adjoint (input
gradient) of that map. PyTorch's `nn.ConvTranspose2d(in, out, k, s, p)` has weight (in, out, kh, kw):
    kernel = torch_weight.permute(2, 3, 1, 0)      torch_weight = kernel.transpose(3, 2, 0, 1)
and `padding=((p, p), (p, p))` gives PyTorch's output size (H - 1) * s - 2p + k (no output_padding).
It also equals `lax.conv_transpose(x, kernel, strides, ((k-1-p, k-1-p), ...), dimension_numbers=
('NHWC', 'HWIO', 'NHWC'), transpose_kernel=True)`.

`conv_transpose` is a `jax.custom_vjp`: reverse mode (also reverse-over-reverse) works, forward
mode (`jax.jvp`, `jax.jacfwd`) does not.

`conv` / `Conv` give the regular strided convolution (flax `nn.Conv`, kernel (kh, kw, in, out)) the
same treatment: XLA:CPU runs its kernel gradient (an rhs-dilated conv) with the same slow loop
(5-7 s per DCGAN-64 discriminator layer inside a train step). Its input gradient is
`conv_transpose` of the cotangent (the adjoint, by definition) and its kernel gradient on CPU is
g^T @ im2col(x) over a space-to-depth copy of x. On CPU both im2col paths run over the batch in
chunks of about `_CHUNK_BYTES` of patches (a `lax.scan`), which keeps the 4x copies in cache.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

_DN = ("NHWC", "HWIO", "NHWC")

Padding = tuple[tuple[int, int], tuple[int, int]]


def _normalize(kernel_shape: Sequence[int], strides, padding) -> tuple[tuple, tuple, tuple]:
    """(kernel_size, strides, padding) as tuples of ints; ValueError for unsupported settings."""
    if len(kernel_shape) != 4:
        raise ValueError(f"kernel must be 4-D (kh, kw, out_features, in_features), got shape "
                         f"{tuple(kernel_shape)}")
    ksize = tuple(int(k) for k in kernel_shape[:2])
    if isinstance(strides, int):
        strides = (strides, strides)
    strides = tuple(int(s) for s in strides)
    if isinstance(padding, int):
        padding = ((padding, padding), (padding, padding))
    if isinstance(padding, str) or len(padding) != 2:
        raise ValueError(f"padding must be ((lo, hi), (lo, hi)) in PyTorch's sense, got {padding!r}")
    padding = tuple((int(lo), int(hi)) for lo, hi in padding)
    if len(strides) != 2:
        raise ValueError(f"strides must be a pair, got {strides!r}")
    for k, s, (lo, hi) in zip(ksize, strides, padding):
        if k < 1 or s < 1:
            raise ValueError(f"kernel size and stride must be >= 1, got kernel {ksize}, "
                             f"strides {strides}")
        if not (0 <= lo < k and 0 <= hi < k):
            raise ValueError(f"padding must satisfy 0 <= p < kernel size, got padding {padding} "
                             f"for kernel size {ksize}")
    return ksize, strides, padding


def output_shape(in_size: Sequence[int], kernel_size: Sequence[int], strides: Sequence[int],
                 padding: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """Spatial output size of the transposed conv: (H - 1) * s + k - lo - hi (PyTorch's)."""
    return tuple((n - 1) * s + k - lo - hi
                 for n, k, s, (lo, hi) in zip(in_size, kernel_size, strides, padding))


def _geometry(n: int, k: int, s: int, lo: int, hi: int) -> dict[str, int]:
    """Sub-pixel bookkeeping along one spatial axis for an input of size n.

    With Z = Y + lo = s*q + r, the output rows Y in [0, n_out) need phase rows q in [q0, q0 + nq).
    """
    n_out = (n - 1) * s + k - lo - hi
    a = -(-k // s)  # taps per phase, ceil(k / s)
    q0 = lo // s
    q1 = (lo + n_out - 1) // s
    nq = q1 - q0 + 1
    # x padded so that a VALID conv with `a` taps yields the nq phase rows: xpad[j] = x[j + q0 - a + 1]
    pad_lo = a - 1 - q0
    pad_hi = q1 + 1 - n
    return dict(n_out=n_out, a=a, q0=q0, nq=nq, pad_lo=pad_lo, pad_hi=pad_hi,
                crop=lo - s * q0)


def _pad(x, pads):
    """lax.pad on the two spatial axes of an NHWC array; negative widths crop."""
    zero = jnp.zeros((), x.dtype)
    return lax.pad(x, zero, ((0, 0, 0), (pads[0][0], pads[0][1], 0),
                             (pads[1][0], pads[1][1], 0), (0, 0, 0)))


def _phase_kernel(kernel, ksize, strides):
    """(kh, kw, O, I) -> Kr (ah, sh, aw, sw, O, I) with Kr[a, r, b, c] = K[s*a + r, s*b + c]."""
    (kh, kw), (sh, sw) = ksize, strides
    ah, aw = -(-kh // sh), -(-kw // sw)
    kp = jnp.pad(kernel, ((0, ah * sh - kh), (0, aw * sw - kw), (0, 0), (0, 0)))
    return kp.reshape(ah, sh, aw, sw, *kernel.shape[2:])


def _subpixel_kernel(kernel, ksize, strides):
    """The HWIO kernel (ah, aw, I, sh*sw*O) of the stride-1 conv computing all output phases."""
    kr = _phase_kernel(kernel, ksize, strides)[::-1, :, ::-1]
    ah, sh, aw, sw, o, i = kr.shape
    return kr.transpose(0, 2, 5, 1, 3, 4).reshape(ah, aw, i, sh * sw * o)


def _geoms(x_shape, ksize, strides, padding):
    return [_geometry(n, k, s, lo, hi)
            for n, k, s, (lo, hi) in zip(x_shape[1:3], ksize, strides, padding)]


def _xpad(x, geoms):
    return _pad(x, [(g["pad_lo"], g["pad_hi"]) for g in geoms])


def _forward(x, kernel, ksize, strides, padding):
    """Sub-pixel forward: one stride-1 conv producing s*s phases, depth-to-space, crop."""
    gh, gw = _geoms(x.shape, ksize, strides, padding)
    (sh, sw), o = strides, kernel.shape[2]
    y = lax.conv_general_dilated(_xpad(x, (gh, gw)), _subpixel_kernel(kernel, ksize, strides),
                                 (1, 1), "VALID", dimension_numbers=_DN)
    b = x.shape[0]
    y = y.reshape(b, gh["nq"], gw["nq"], sh, sw, o).transpose(0, 1, 3, 2, 4, 5)
    y = y.reshape(b, gh["nq"] * sh, gw["nq"] * sw, o)
    return y[:, gh["crop"]:gh["crop"] + gh["n_out"], gw["crop"]:gw["crop"] + gw["n_out"]]


def _strided_conv(y, kernel, strides, padding):
    """The regular conv (big -> small) whose adjoint is the transposed conv."""
    return lax.conv_general_dilated(y, kernel, strides, padding, dimension_numbers=_DN)


def _phase_split(g, geoms, strides):
    """Cotangent (B, H_out, W_out, O) -> phases (B, nqh, nqw, sh*sw*O) with Z = Y + lo = s*q + r."""
    gh, gw = geoms
    sh, sw = strides
    g = _pad(g, [(gg["crop"], gg["nq"] * s - gg["crop"] - gg["n_out"])
                 for gg, s in zip(geoms, strides)])
    b, o = g.shape[0], g.shape[3]
    g = g.reshape(b, gh["nq"], sh, gw["nq"], sw, o).transpose(0, 1, 3, 2, 4, 5)
    return g.reshape(b, gh["nq"], gw["nq"], sh * sw * o)


# XLA:CPU is memory-bound on the im2col copies (4x the data): building and consuming them a few
# examples at a time keeps them in cache. 16 MiB per chunk measured best for DCGAN-64 layers.
_CHUNK_BYTES = 16 << 20


def _in_batch_chunks(fn, x, g, bytes_per_example):
    """fn(x, g) -> (per-example output or None, output summed over examples), run on batch chunks.

    The batch is split into the fewest equal chunks whose im2col matrix (bytes_per_example per
    example) fits in _CHUNK_BYTES and `lax.scan` runs fn on them: per-example outputs are
    concatenated, the others summed. One chunk: fn(x, g) itself.
    """
    b = x.shape[0]
    n = next((d for d in range(1, b + 1)
              if b % d == 0 and (b // d) * bytes_per_example <= _CHUNK_BYTES), max(b, 1))
    if n == 1:
        return fn(x, g)
    chunks = lambda a: a.reshape(n, b // n, *a.shape[1:])
    out0, total0 = jax.eval_shape(fn, chunks(x)[0], chunks(g)[0])
    # the carry must have the device-variance (shard_map) of the per-chunk sums: that of x and g
    axes = tuple(sorted(_varying_axes(x) | _varying_axes(g)))
    init = jnp.zeros(total0.shape, total0.dtype)
    init = _to_varying(init, axes) if axes else init

    def body(total, xg):
        out, part = fn(*xg)
        return total + part, out

    total, outs = lax.scan(body, init, (chunks(x), chunks(g)))
    if out0 is None:
        return None, total
    return outs.reshape(b, *outs.shape[2:]), total


def _grads_im2col(x, kernel, g, ksize, strides, padding):
    """(dx, dK) from im2col matmuls, the batch split into chunks (see `_in_batch_chunks`)."""
    geoms = _geoms(x.shape, ksize, strides, padding)
    patch_bytes = (x.shape[1] * x.shape[2] * geoms[0]["a"] * geoms[1]["a"] * strides[0]
                   * strides[1] * g.shape[3] * g.dtype.itemsize)
    return _in_batch_chunks(
        lambda x, g: _grads_im2col_chunk(x, kernel, g, ksize, strides, padding),
        x, g, patch_bytes)


def _grads_im2col_chunk(x, kernel, g, ksize, strides, padding):
    """(dx, dK) from one im2col matrix of the phase-split cotangent and two matmuls.

    With q = h + a: dx[h] = sum_{a,r} g_r[h + a] K[s*a + r] and dK[s*a + r] = sum_{b,h} g_r[b, h + a]
    x[b, h], so both contract the same patches P[b, h, (a, r)] = g_r[b, h + a].
    """
    geoms = _geoms(x.shape, ksize, strides, padding)
    gh, gw = geoms
    (sh, sw), (kh, kw) = strides, ksize
    ah, aw = gh["a"], gw["a"]
    b, hh, ww, i = x.shape
    o = g.shape[3]
    gph = _phase_split(g, geoms, strides)  # phase rows q in [q0, q0 + nq)
    # re-index to phase rows q in [0, n + a - 1), the ones with some x[q - a] in range
    gph = _pad(gph, [(gg["q0"], n + gg["a"] - 1 - gg["q0"] - gg["nq"])
                     for gg, n in zip(geoms, (hh, ww))])
    cols = [gph[:, a:a + hh, c:c + ww] for a in range(ah) for c in range(aw)]
    patches = jnp.stack(cols, axis=3).reshape(b * hh * ww, ah * aw * sh * sw * o)
    # kernel rows in the patch order (a, c, rh, rw, o)
    kmat = _phase_kernel(kernel, ksize, strides).transpose(0, 2, 1, 3, 4, 5).reshape(-1, i)
    dx = jnp.dot(patches, kmat).reshape(b, hh, ww, i)
    # x^T @ patches then a (small) transpose: XLA:CPU runs this operand order faster than
    # patches^T @ x.
    dk = lax.dot_general(x.reshape(-1, i), patches, (((0,), (0,)), ((), ())))
    dk = dk.reshape(i, ah, aw, sh, sw, o).transpose(1, 3, 2, 4, 5, 0)
    return dx, dk.reshape(ah * sh, aw * sw, o, i)[:kh, :kw]


def _kernel_grad_conv(x, kernel, g, ksize, strides, padding):
    """The same kernel gradient via the weight gradient of the stride-1 sub-pixel conv."""
    # Both maps are linear in the kernel, so any primal point works; linearising at `kernel` itself
    # keeps the gradient's device-variance (shard_map) that of the kernel: a zeros constant would be
    # device-invariant and its cotangent implicitly summed over devices.
    geoms = _geoms(x.shape, ksize, strides, padding)
    xp = _xpad(x, geoms)
    gph = _phase_split(g, geoms, strides)
    wc, vjp_k = jax.vjp(lambda k: _subpixel_kernel(k, ksize, strides), kernel)
    _, vjp_w = jax.vjp(
        lambda w: lax.conv_general_dilated(xp, w, (1, 1), "VALID", dimension_numbers=_DN), wc)
    (dwc,) = vjp_w(gph)
    return vjp_k(dwc)[0]


def _grads_conv(x, kernel, g, ksize, strides, padding):
    """(dx, dK) with convolutions: the regular strided conv of g, and the weight gradient of the
    stride-1 sub-pixel conv."""
    return (_strided_conv(g, kernel, strides, padding),
            _kernel_grad_conv(x, kernel, g, ksize, strides, padding))


def _grads(x, kernel, g, ksize, strides, padding):
    # XLA:CPU runs convolution weight gradients slowly but matmuls fast; accelerators have fast
    # native conv gradients (and the im2col copy costs memory), so pick per platform when lowering.
    kw = dict(ksize=ksize, strides=strides, padding=padding)
    return lax.platform_dependent(x, kernel, g, cpu=functools.partial(_grads_im2col, **kw),
                                  default=functools.partial(_grads_conv, **kw))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_transpose(x, kernel, strides, padding):
    ksize = kernel.shape[:2]
    return _forward(x, kernel, ksize, strides, padding)


def _conv_transpose_fwd(x, kernel, strides, padding):
    return _conv_transpose(x, kernel, strides, padding), (x, kernel)


def _conv_transpose_bwd(strides, padding, res, g):
    x, kernel = res
    ksize = kernel.shape[:2]
    dx, dk = _grads(x, kernel, g, ksize, strides, padding)
    return dx.astype(x.dtype), dk.astype(kernel.dtype)


_conv_transpose.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


def conv_transpose(x: jax.Array, kernel: jax.Array, strides: Sequence[int] | int = (2, 2),
                   padding: Padding | int = ((1, 1), (1, 1))) -> jax.Array:
    """PyTorch-style transposed convolution (NHWC), fast forward and gradients on CPU.

    Args:
      x: (B, H, W, in_features).
      kernel: (kh, kw, out_features, in_features), the HWIO kernel of the strided conv this op is
        the adjoint of (see the module docstring for the PyTorch weight mapping).
      strides: (sh, sw) or an int.
      padding: ((lo, hi), (lo, hi)) or an int, PyTorch's `padding` (cropped from the full output);
        0 <= p < kernel size.

    Returns:
      (B, (H-1)*sh + kh - lo_h - hi_h, (W-1)*sw + kw - lo_w - hi_w, out_features).
    """
    ksize, strides, padding = _normalize(kernel.shape, strides, padding)
    if x.ndim != 4:
        raise ValueError(f"x must be NHWC (4-D), got shape {x.shape}")
    if x.shape[3] != kernel.shape[3]:
        raise ValueError(f"x has {x.shape[3]} features but the kernel expects {kernel.shape[3]} "
                         f"(kernel layout (kh, kw, out_features, in_features))")
    if min(output_shape(x.shape[1:3], ksize, strides, padding)) < 1:
        raise ValueError(f"input {x.shape[1:3]} with kernel {ksize}, strides {strides} and padding "
                         f"{padding} gives an empty output")
    x, kernel = jnp.asarray(x), jnp.asarray(kernel)
    dtype = jnp.result_type(x, kernel)
    x, kernel = _match_varying_axes(x.astype(dtype), kernel.astype(dtype))
    return _conv_transpose(x, kernel, strides, padding)


def _match_varying_axes(x, kernel):
    """Inside shard_map, give x and kernel the same varying manual axes before the custom_vjp.

    A replicated kernel applied to sharded data is cast to varying *outside* the custom_vjp, so
    autodiff transposes that cast into the psum of the kernel gradient over the data axes, exactly
    as for a plain convolution, and the backward rule (both platform branches) sees uniform types.
    No-op outside shard_map.
    """
    vx, vk = _varying_axes(x), _varying_axes(kernel)
    if vk - vx:
        x = _to_varying(x, tuple(sorted(vk - vx)))
    if vx - vk:
        kernel = _to_varying(kernel, tuple(sorted(vx - vk)))
    return x, kernel


def _varying_axes(a) -> frozenset:
    aval = jax.typeof(a)
    mat = getattr(aval, "mat", None)  # jax >= 0.9: aval.mat.varying; before: aval.vma
    return frozenset(mat.varying if mat is not None else getattr(aval, "vma", ()))


def _to_varying(a, axes):
    if hasattr(lax, "pcast"):
        return lax.pcast(a, axes, to="varying")
    return lax.pvary(a, axes)


# ---------------------------------------------------------------------------------------------
# The regular (strided) convolution, with the same treatment of its gradients.


def conv_output_shape(in_size: Sequence[int], kernel_size: Sequence[int], strides: Sequence[int],
                      padding: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """Spatial output size of the strided conv: (H + lo + hi - k) // s + 1."""
    return tuple((n + lo + hi - k) // s + 1
                 for n, k, s, (lo, hi) in zip(in_size, kernel_size, strides, padding))


def _conv_forward(x, kernel, strides, padding):
    return lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_DN)


def _conv_input_grad(x_shape, kernel, g, strides, padding):
    """The input gradient of the strided conv: the transposed conv of g with the same kernel.

    The transposed conv yields the rows (m - 1)*s + k of the padded input that some window touches,
    minus `lo` in front and `hi` at the end. When (n + lo + hi - k) % s = r > 0 the last r padded
    rows are touched by no window: crop only the max(hi - r, 0) touched rows of the high padding and
    append max(r - hi, 0) zero rows for untouched input rows.
    """
    ksize = kernel.shape[:2]
    covered = [(m - 1) * s + k - lo  # padded rows touched by some window, minus the low padding
               for m, k, s, (lo, _) in zip(g.shape[1:3], ksize, strides, padding)]
    n_hw = x_shape[1:3]
    tpad = tuple((lo, max(c - n, 0)) for (lo, _), c, n in zip(padding, covered, n_hw))
    dx = _conv_transpose(g, kernel, strides, tpad)
    return _pad(dx, [(0, n - min(c, n)) for c, n in zip(covered, n_hw)])


def _conv_kernel_grad_im2col(x, kernel, g, strides, padding):
    """The kernel gradient by im2col matmuls, the batch split into chunks (`_in_batch_chunks`)."""
    (kh, kw), (sh, sw) = kernel.shape[:2], strides
    patch_bytes = (g.shape[1] * g.shape[2] * -(-kh // sh) * -(-kw // sw) * sh * sw * x.shape[3]
                   * x.dtype.itemsize)
    _, dk = _in_batch_chunks(
        lambda x, g: (None, _conv_kernel_grad_chunk(x, kernel, g, strides, padding)),
        x, g, patch_bytes)
    return dk


def _conv_kernel_grad_chunk(x, kernel, g, strides, padding):
    """dK[a, c, i, o] = sum_{b,p,q} x_padded[b, s*p + a, s'*q + c, i] g[b, p, q, o]: one matmul.

    Space-to-depth first: with kernel rows a = s*t + r (t < ceil(k/s), kernel zero-padded to
    s*ceil(k/s) rows), x_padded[s*p + a] = x_s2d[p + t, r], so the im2col matrix is ceil(k/s)**2
    *contiguous* shifted windows of x_s2d (B, P, Q, sh*sw*I) rather than k*k strided ones.
    """
    (kh, kw), (sh, sw) = kernel.shape[:2], strides
    b, i, o = x.shape[0], x.shape[3], g.shape[3]
    mh, mw = g.shape[1:3]
    th, tw = -(-kh // sh), -(-kw // sw)
    ph, pw = mh + th - 1, mw + tw - 1  # s2d rows / cols
    xp = _pad(x, [(lo, s * p - lo - n) for (lo, _), s, p, n in
                  zip(padding, strides, (ph, pw), x.shape[1:3])])
    xs = xp.reshape(b, ph, sh, pw, sw, i).transpose(0, 1, 3, 2, 4, 5).reshape(b, ph, pw, -1)
    cols = [xs[:, t:t + mh, u:u + mw] for t in range(th) for u in range(tw)]
    patches = jnp.stack(cols, axis=3).reshape(b * mh * mw, th * tw * sh * sw * i)
    # g^T @ patches then a (small) transpose: XLA:CPU runs this operand order faster than
    # patches^T @ g. Columns (t, u, rh, rw, i) -> kernel rows (t, rh), cols (u, rw).
    dk = lax.dot_general(g.reshape(-1, o), patches, (((0,), (0,)), ((), ())))
    dk = dk.reshape(o, th, tw, sh, sw, i).transpose(1, 3, 2, 4, 5, 0)
    return dk.reshape(th * sh, tw * sw, i, o)[:kh, :kw]


def _conv_kernel_grad_native(x, kernel, g, strides, padding):
    """The same with the backend's convolution weight gradient (linearised at `kernel`, which keeps
    the gradient's shard_map device-variance that of the kernel; see _kernel_grad_conv)."""
    _, vjp = jax.vjp(lambda k: _conv_forward(x, k, strides, padding), kernel)
    return vjp(g)[0]


def _conv_kernel_grad(x, kernel, g, strides, padding):
    kw = dict(strides=strides, padding=padding)
    return lax.platform_dependent(x, kernel, g,
                                  cpu=functools.partial(_conv_kernel_grad_im2col, **kw),
                                  default=functools.partial(_conv_kernel_grad_native, **kw))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv(x, kernel, strides, padding):
    return _conv_forward(x, kernel, strides, padding)


def _conv_fwd(x, kernel, strides, padding):
    return _conv(x, kernel, strides, padding), (x, kernel)


def _conv_bwd(strides, padding, res, g):
    x, kernel = res
    dx = _conv_input_grad(x.shape, kernel, g, strides, padding)
    dk = _conv_kernel_grad(x, kernel, g, strides, padding)
    return dx.astype(x.dtype), dk.astype(kernel.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)


def conv(x: jax.Array, kernel: jax.Array, strides: Sequence[int] | int = (2, 2),
         padding: Padding | int = ((1, 1), (1, 1))) -> jax.Array:
    """Strided convolution (NHWC, HWIO) with gradients that are fast on XLA:CPU.

    Equals `lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=('NHWC',
    'HWIO', 'NHWC'))` (PyTorch's `conv2d` with kernel = torch_weight.permute(2, 3, 1, 0)). XLA:CPU
    computes the kernel gradient of a strided conv (an rhs-dilated conv) with a very slow generic
    loop, so the backward pass is a custom VJP:

    * input gradient: `conv_transpose` of the cotangent with the same kernel (its definition: the
      adjoint of this conv), i.e. its sub-pixel stride-1 conv forward;
    * kernel gradient on CPU: g^T @ im2col(x_padded), matmuls over batch chunks; elsewhere (chosen
      when lowering by `lax.platform_dependent`) the backend's native conv weight gradient.

    Reverse mode (also reverse-over-reverse, e.g. gradient penalties) works; forward mode does not.

    Args:
      x: (B, H, W, in_features).
      kernel: (kh, kw, in_features, out_features).
      strides: (sh, sw) or an int.
      padding: ((lo, hi), (lo, hi)) or an int, zero padding with 0 <= p < kernel size.

    Returns:
      (B, (H + lo_h + hi_h - kh) // sh + 1, (W + lo_w + hi_w - kw) // sw + 1, out_features).
    """
    x, kernel = jnp.asarray(x), jnp.asarray(kernel)
    if kernel.ndim != 4:
        raise ValueError(f"kernel must be 4-D (kh, kw, in_features, out_features), got shape "
                         f"{kernel.shape}")
    ksize, strides, padding = _normalize(kernel.shape, strides, padding)
    if x.ndim != 4:
        raise ValueError(f"x must be NHWC (4-D), got shape {x.shape}")
    if x.shape[3] != kernel.shape[2]:
        raise ValueError(f"x has {x.shape[3]} features but the kernel expects {kernel.shape[2]} "
                         f"(kernel layout (kh, kw, in_features, out_features))")
    if min(n + lo + hi - k for n, k, (lo, hi) in zip(x.shape[1:3], ksize, padding)) < 0:
        raise ValueError(f"input {x.shape[1:3]} with kernel {ksize} and padding {padding} gives an "
                         f"empty output")
    dtype = jnp.result_type(x, kernel)
    x, kernel = _match_varying_axes(x.astype(dtype), kernel.astype(dtype))
    return _conv(x, kernel, strides, padding)


def _apply(op, x, kernel, bias, strides, padding, dtype):
    """op(x, kernel) + bias on NHWC inputs with any number of leading batch axes."""
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=dtype)
    batch_shape = x.shape[:-3]
    y = op(x.reshape(-1, *x.shape[-3:]), kernel, strides, padding)
    y = y.reshape(*batch_shape, *y.shape[1:])
    return y if bias is None else y + bias


class _ConvLayer(nn.Module):
    """Fields shared by Conv and ConvTranspose (flax's names and defaults)."""

    features: int
    kernel_size: tuple[int, int] = (4, 4)
    strides: tuple[int, int] = (2, 2)
    padding: Padding = ((1, 1), (1, 1))
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros_init()


class Conv(_ConvLayer):
    """A drop-in for `flax.linen.Conv(features, kernel_size, strides, padding)` (explicit
    ((lo, hi), (lo, hi)) padding only) computed by `conv`, i.e. with fast gradients on CPU.

    Parameters as nn.Conv's: `kernel` (kh, kw, in_features, features) and `bias` (features,).
    Inputs may have extra leading batch axes.
    """

    @nn.compact
    def __call__(self, x):
        kernel_shape = (*self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", self.kernel_init, kernel_shape, self.param_dtype)
        bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
                if self.use_bias else None)
        return _apply(conv, x, kernel, bias, self.strides, self.padding, self.dtype)


class ConvTranspose(_ConvLayer):
    """`nn.ConvTranspose2d(in, features, kernel_size, strides, padding)` of PyTorch, NHWC.

    Parameters: `kernel` (kh, kw, features, in_features) (PyTorch weight: kernel.transpose(3, 2,
    0, 1)) and `bias` (features,). Inputs may have extra leading batch axes.
    """

    @nn.compact
    def __call__(self, x):
        in_features = x.shape[-1]
        # lecun_normal & co. take fan_in from axis -2 and fan_out from -1 by default; in this
        # layout the input features are the last axis, so tell them.
        kernel_shape = (*self.kernel_size, self.features, in_features)
        kernel = self.param("kernel", _with_io_axes(self.kernel_init), kernel_shape,
                            self.param_dtype)
        bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
                if self.use_bias else None)
        return _apply(conv_transpose, x, kernel, bias, self.strides, self.padding, self.dtype)


def _with_io_axes(init):
    """Run a variance-scaling initializer as if the kernel were (kh, kw, in, out).

    Shape-agnostic initializers (normal(0.02), zeros) are unaffected; variance-scaling ones
    (lecun_normal, ...) get fan_in = kh*kw*in_features, as for flax.linen.ConvTranspose.
    """

    def wrapped(key, shape, dtype=jnp.float32):
        kh, kw, o, i = shape
        return jnp.swapaxes(init(key, (kh, kw, i, o), dtype), 2, 3)

    return wrapped


def upsample(x: jax.Array, factor: int) -> jax.Array:
    """Nearest-neighbour upsampling of NHWC images by an integer factor."""
    if factor == 1:
        return x
    b, h, w, c = x.shape
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, factor, w, factor, c))
    return x.reshape(b, h * factor, w * factor, c)


def downsample(x: jax.Array, factor: int) -> jax.Array:
    """Average pooling of NHWC images over factor x factor blocks; rows and columns past the last
    whole block are dropped (PyTorch's avg_pool2d)."""
    if factor == 1:
        return x
    b, h, w, c = x.shape
    h, w = h // factor, w // factor
    x = x[:, :h * factor, :w * factor]
    return x.reshape(b, h, factor, w, factor, c).mean(axis=(2, 4))


__all__ = ["Conv", "ConvTranspose", "conv", "conv_output_shape", "conv_transpose", "downsample",
           "output_shape", "upsample"]
