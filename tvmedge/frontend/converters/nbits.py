"""``com.microsoft.MatMulNBits`` (ONNX Runtime's 4-bit block-wise weights), which TVM 0.27's importer lacks.

``Y = A @ dequantize(B)^T (+ bias)`` with ``B`` uint8 ``[N, n_blocks, block_size / 2]`` (two 4-bit codes per byte
along K, low nibble first), ``scales`` ``[N, n_blocks]`` (or flat) and optional ``zero_points`` (uint8, two per byte;
8 without them): ``w[n, k] = (code - zero_point) * scale`` per block of ``block_size`` values along K. Written by
:mod:`tvmedge.quant.blockwise` and by ONNX Runtime's ``MatMulNBitsQuantizer``; both import here.

The weights stay packed: the layer is one hand-written TIR kernel (:func:`matmul_nbits_kernel`, called with
``R.call_tir``) that reads the packed bytes and dequantizes them in registers inside the reduction; no float
copy of the weights exists anywhere, in memory or in the artifact. It is written by hand (rather than as Relax
unpack + matmul ops for FuseOps to fuse) so that the decode-in-registers schedule is fixed by construction and
does not depend on what a search or a predictor picks: the zero-measurement predictor and the quick search have
no measurement budget for it on a cross target, and a decode (nibble select, zero point, scale) inside the
reduction is exactly what LLVM needs laid out for vector loads. The kernel carries ``tirx.is_scheduled`` so that
neither the predictor nor a tuning run reschedules it (MetaSchedule's task extraction skips such functions), and
``op_pattern`` opaque so that FuseOps leaves it whole.

The kernel's layout (the same bytes, reordered once at import; see :func:`repack`): the output columns are
cut into tiles of ``V`` (16) and each tile's bytes are stored column-innermost, ``[N / V, n_blocks,
block_size / 2, V]``, so that one vector load brings the next two K-steps of V columns; scales (and zero points)
likewise ``[N / V, n_blocks, V]``. Per block, each row of A accumulates ``sum a_k * code`` in V lanes, takes off
``zp * sum a_k`` and multiplies by the block's scales once. Rows of A go ``MT`` (<= 4) at a time through each
decoded vector, so a prefill (M > 1) decodes each weight M / MT times, a decode step (M = 1, a GEMV) once. Runs
of consecutive tiles run in parallel.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["CONVERTERS", "MatMulNBits", "check_matmul_nbits", "matmul_nbits_kernel", "repack", "KERNEL_NAME",
           "LANES"]

KERNEL_NAME = "tvmedge_matmul_nbits"
LANES = 16  # output columns per vector tile (4 NEON registers, 1 AVX-512 register, 2 AVX2 ones)
# Parallel tasks per call, each a run of consecutive tiles. Not one task per tile: TVM gives each parallel task's
# local buffers from TVMBackendAllocWorkspace, and per 6 kB tile those calls cost more than streaming its bytes
MAX_CHUNKS = 16


def check_matmul_nbits(node, inits: dict, a_shape=None) -> None:
    """ValueError (one line, naming the node) unless ``node`` is a MatMulNBits this importer runs: 4 bits,
    constant B / scales / zero points of the shapes K, N and block_size imply, no g_idx."""
    attrs = {a.name: a for a in node.attribute}
    name = f"MatMulNBits '{node.name or node.output[0]}'"
    for key in ("K", "N", "block_size"):
        if key not in attrs:
            raise ValueError(f"{name}: attribute {key} is missing")
    k, n, bs = attrs["K"].i, attrs["N"].i, attrs["block_size"].i
    bits = attrs["bits"].i if "bits" in attrs else 4
    if bits != 4:
        raise ValueError(f"{name}: bits={bits} is not supported; tvmedge imports 4-bit MatMulNBits only")
    if bs < 16 or bs & (bs - 1):
        raise ValueError(f"{name}: block_size={bs} must be a power of two >= 16")
    if k <= 0 or n <= 0:
        raise ValueError(f"{name}: K={k} and N={n} must be positive")
    if a_shape is not None and a_shape and a_shape[-1] not in (k, 0, None) and isinstance(a_shape[-1], int):
        raise ValueError(f"{name}: input A's last dim is {a_shape[-1]} but K={k}")
    n_blocks = -(-k // bs)
    inputs = list(node.input) + [""] * (6 - len(node.input))
    if inputs[4]:
        raise ValueError(f"{name}: g_idx (act-order) is not supported; re-quantize without it")
    shapes = {}
    for position, what in ((1, "B"), (2, "scales"), (3, "zero_points")):
        if not inputs[position]:
            continue
        if inputs[position] not in inits:
            raise ValueError(f"{name}: {what} must be a constant (an initializer)")
        shapes[what] = tuple(int(d) for d in inits[inputs[position]].dims)
    if "B" not in shapes or "scales" not in shapes:
        raise ValueError(f"{name}: B and scales are required")
    blob = bs // 2
    if shapes["B"] not in ((n, n_blocks, blob), (n, n_blocks * blob)):
        raise ValueError(f"{name}: B has shape {list(shapes['B'])}, expected [{n}, {n_blocks}, {blob}] for K={k}, "
                         f"N={n}, block_size={bs}")
    if int(np.prod(shapes["scales"])) != n * n_blocks:
        raise ValueError(f"{name}: scales have {int(np.prod(shapes['scales']))} values, expected N * n_blocks = "
                         f"{n * n_blocks}")
    if "zero_points" in shapes:
        from onnx import TensorProto

        if inits[inputs[3]].data_type != TensorProto.UINT8:
            raise ValueError(f"{name}: zero_points must be uint8 (packed 4-bit); float zero points are not supported")
        if int(np.prod(shapes["zero_points"])) != n * ((n_blocks + 1) // 2):
            raise ValueError(f"{name}: zero_points have {int(np.prod(shapes['zero_points']))} bytes, expected "
                             f"{n * ((n_blocks + 1) // 2)}")


def repack(b: np.ndarray, scales: np.ndarray, zero_points, n: int, block_size: int, lanes: int) -> tuple:
    """MatMulNBits arrays -> the kernel's: bytes ``[N/V, n_blocks, bs/2, V]``, scales ``[N/V, n_blocks, V]``, zero
    points (unpacked, one byte per block) ``[N/V, n_blocks, V]`` or None. The same bytes, reordered."""
    n_blocks = b.size // (n * (block_size // 2))
    tiles = n // lanes
    packed = b.reshape(tiles, lanes, n_blocks, block_size // 2).transpose(0, 2, 3, 1)
    scales = scales.reshape(tiles, lanes, n_blocks).transpose(0, 2, 1)
    zeros = None
    if zero_points is not None:
        zp = zero_points.reshape(n, -1)
        unpacked = np.empty((n, zp.shape[1] * 2), np.uint8)
        unpacked[:, 0::2], unpacked[:, 1::2] = zp & 0x0F, zp >> 4
        zeros = np.ascontiguousarray(unpacked[:, :n_blocks].reshape(tiles, lanes, n_blocks).transpose(0, 2, 1))
    return np.ascontiguousarray(packed), np.ascontiguousarray(scales), zeros


def _lanes(n: int) -> int:
    return next(v for v in (LANES, 8, 4, 2, 1) if n % v == 0)


def _row_tile(m: int) -> int:
    return next(t for t in (4, 3, 2, 1) if m % t == 0)


def _chains(blk, i, v, pairs: int):
    """The sum of a row's ``2 * pairs`` accumulators (a TIR expression, built while the kernel is parsed)."""
    total = blk[i, 0, v]
    for c in range(1, 2 * pairs):
        total = total + blk[i, c, v]
    return total


@lru_cache(maxsize=None)
def matmul_nbits_kernel(m: int, k_padded: int, n: int, block_size: int, lanes: int, scale_dtype: str,
                        zero_points: bool, dtype: str = "float32"):
    """The TIR kernel ``Y[m, n] = sum_k A[m, k] * (code[n, k] - zp) * scale`` on the packed layout of :func:`repack`.

    Arguments: ``A [m, k_padded]``, ``B [n/lanes, n_blocks, bs/2, lanes] uint8``, ``S [n/lanes, n_blocks, lanes]``,
    (``Z`` uint8 like S,) ``Y [m, n]``. Built with TVMScript rather than TE + a schedule: the loop nest is the
    schedule, and writing it out keeps the decode in registers (``W_lo`` / ``W_hi`` hold one vector each).

    Two things keep the inner loop (one byte vector: two K steps of ``lanes`` columns) short and unstalled:

    - the zero point leaves it: ``sum a * (code - zp) = sum a * code - zp * sum a``, with ``sum a`` per row and
      block computed once per call (``asum``), so the inner loop is load, mask/shift, widen, convert, FMA;
    - the FMAs of a block go into independent accumulators (low and high nibbles apart, and for a single row,
      as in a decode step, even and odd byte rows apart too), so they do not wait on each other's latency: one
      chain of dependent FMAs made the kernel latency bound at well under memory bandwidth.
    """
    from tvm.script import tirx as T

    n_blocks, half, tiles = k_padded // block_size, block_size // 2, n // lanes
    mt = _row_tile(m)
    m_outer = m // mt
    pairs = 2 if mt == 1 and half % 2 == 0 else 1  # byte rows per step, each with its own two accumulators
    symmetric = not zero_points
    zshape = (tiles, n_blocks, lanes) if zero_points else (1,)
    jobs = tiles * m_outer
    chunks = next(c for c in range(min(jobs, MAX_CHUNKS), 0, -1) if jobs % c == 0)

    @T.prim_func(private=True)
    def kernel(A: T.Buffer((m, k_padded), dtype), B: T.Buffer((tiles, n_blocks, half, lanes), "uint8"),
               S: T.Buffer((tiles, n_blocks, lanes), scale_dtype), Z: T.Buffer(zshape, "uint8"),
               Y: T.Buffer((m, n), dtype)):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": 8})
        asum = T.decl_buffer((m, n_blocks), "float32")
        for r in range(m):
            for b in range(n_blocks):
                asum[r, b] = T.float32(0)
                for j in range(block_size):
                    asum[r, b] = asum[r, b] + T.Cast("float32", A[r, b * block_size + j])
        for chunk in T.parallel(chunks):
            acc = T.decl_buffer((mt, lanes), "float32", scope="local")
            blk = T.decl_buffer((mt, 2 * pairs, lanes), "float32", scope="local")
            w_lo = T.decl_buffer((lanes,), "float32", scope="local")
            w_hi = T.decl_buffer((lanes,), "float32", scope="local")
            for job_in_chunk in range(jobs // chunks):
                job = chunk * (jobs // chunks) + job_in_chunk
                t = job // m_outer
                row = (job % m_outer) * mt
                for i in T.unroll(mt):
                    for v in T.vectorized(lanes):
                        acc[i, v] = T.float32(0)
                for b in range(n_blocks):
                    for i in T.unroll(mt):
                        for c in T.unroll(2 * pairs):
                            for v in T.vectorized(lanes):
                                blk[i, c, v] = T.float32(0)
                    for hh in range(half // pairs):
                        for p in T.unroll(pairs):
                            for v in T.vectorized(lanes):
                                w_lo[v] = T.Cast("float32", T.bitwise_and(B[t, b, hh * pairs + p, v], T.uint8(15)))
                                w_hi[v] = T.Cast("float32", T.shift_right(B[t, b, hh * pairs + p, v], T.uint8(4)))
                            for i in T.unroll(mt):
                                for v in T.vectorized(lanes):
                                    blk[i, 2 * p, v] = blk[i, 2 * p, v] + T.Cast(
                                        "float32", A[row + i, b * block_size + 2 * (hh * pairs + p)]) * w_lo[v]
                                    blk[i, 2 * p + 1, v] = blk[i, 2 * p + 1, v] + T.Cast(
                                        "float32", A[row + i, b * block_size + 2 * (hh * pairs + p) + 1]) * w_hi[v]
                    for i in T.unroll(mt):
                        for v in T.vectorized(lanes):
                            if symmetric:
                                acc[i, v] = acc[i, v] + (_chains(blk, i, v, pairs) - T.float32(8) * asum[row + i, b]) \
                                    * T.Cast("float32", S[t, b, v])
                            else:
                                acc[i, v] = acc[i, v] + (_chains(blk, i, v, pairs) - T.Cast("float32", Z[t, b, v])
                                                         * asum[row + i, b]) * T.Cast("float32", S[t, b, v])
                for i in T.unroll(mt):
                    for v in T.vectorized(lanes):
                        Y[row + i, t * lanes + v] = T.Cast(dtype, acc[i, v])

    return kernel


def _const(expr, what: str, name: str) -> np.ndarray:
    import tvm

    if isinstance(expr, tvm.ir.Constant) and hasattr(expr.value, "numpy"):
        return expr.value.numpy()
    raise ValueError(f"{name}: {what} must be a constant (an initializer)")


def _fp16_exact(scales: np.ndarray) -> bool:
    """True when float32 scales are float16 values (written as float16 and widened, e.g. by a folded Cast)."""
    with np.errstate(over="ignore"):
        return bool(np.all(scales.astype(np.float16).astype(np.float32) == scales))


from tvm.relax.frontend.onnx.onnx_frontend import OnnxOpConverter  # noqa: E402


class MatMulNBits(OnnxOpConverter):
    """``com.microsoft.MatMulNBits`` (4 bits): one packed-weight kernel (:func:`matmul_nbits_kernel`)."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        from tvm import relax

        name = "MatMulNBits"
        k, n, bs = int(attr["K"]), int(attr["N"]), int(attr["block_size"])
        bits = int(attr.get("bits", 4))
        if bits != 4:
            raise ValueError(f"{name}: bits={bits} is not supported; tvmedge imports 4-bit MatMulNBits only")
        a = inputs[0]
        a_shape = [int(d) for d in a.ty.shape.values]
        if a_shape[-1] != k:
            raise ValueError(f"{name}: input A's last dim is {a_shape[-1]} but K={k}")
        dtype = str(a.ty.dtype)
        b = _const(inputs[1], "B", name).astype(np.uint8)
        scales = _const(inputs[2], "scales", name)
        zero_points = inputs[3] if len(inputs) > 3 else None
        zp = _const(zero_points, "zero_points", name).astype(np.uint8) if zero_points is not None else None
        if len(inputs) > 4 and inputs[4] is not None:
            raise ValueError(f"{name}: g_idx (act-order) is not supported; re-quantize without it")
        bias = inputs[5] if len(inputs) > 5 else None
        n_blocks = -(-k // bs)
        if b.size != n * n_blocks * (bs // 2) or scales.size != n * n_blocks:
            raise ValueError(f"{name}: B / scales do not match K={k}, N={n}, block_size={bs}")
        scale_dtype = "float16" if scales.dtype == np.float16 or _fp16_exact(scales.astype(np.float32)) else "float32"
        scales = scales.astype(scale_dtype)
        lanes = _lanes(n)
        packed, scales, zeros = repack(b, scales, zp, n, bs, lanes)
        rows = int(np.prod(a_shape[:-1])) if len(a_shape) > 1 else 1
        x = a if a_shape == [rows, k] else bb.normalize(relax.op.reshape(a, (rows, k)))
        k_padded = n_blocks * bs
        if k_padded != k:
            x = bb.normalize(relax.op.nn.pad(x, [0, 0, 0, k_padded - k]))
        kernel = matmul_nbits_kernel(rows, k_padded, n, bs, lanes, scale_dtype, zeros is not None, dtype)
        gv = bb.add_func(kernel, KERNEL_NAME)
        z = relax.const(zeros if zeros is not None else np.zeros(1, np.uint8), "uint8")
        y = bb.emit(relax.call_tir(gv, [x, relax.const(packed, "uint8"), relax.const(scales, scale_dtype), z],
                                   relax.TensorType((rows, n), dtype)))
        out_shape = a_shape[:-1] + [n] if len(a_shape) > 1 else [n]
        if out_shape != [rows, n]:
            y = bb.normalize(relax.op.reshape(y, out_shape))
        if bias is not None:
            y = relax.op.add(y, bias)
        return y


CONVERTERS = {"com.microsoft.MatMulNBits": MatMulNBits}
