"""Written schedules for the integer layers (int8 x int8 -> int32) on the CPU's dot-product instructions.

The integer path (:mod:`tvmedge.frontend.converters.quantized`) lowers every quantized convolution and matrix
product to one reduction ``acc[..] += int32(x) * int32(w)`` followed by the requantize. MetaSchedule's own
int8 design space (``MultiLevelTilingWithIntrin``) does not build these blocks in TVM 0.27 (its
``RewriteTensorize`` postprocessor fails on them), and the searched or predicted schedules that do build leave
the reduction to LLVM, which does not find the dot-product instructions in them: integer layers ran 2-4x slower
than the float ones. This module writes the schedule the int8 libraries use (oneDNN's and XNNPACK's
micro-kernels), as a TIR schedule of the same workload so a measured record still wins over it:

- the unit of work is one instruction: ``lanes`` int32 accumulators, each the sum of 4 products of one group of
  4 reduction elements (``vpdpbusd`` on x86 with AVX-512 VNNI: 16 lanes, u8 x s8; ``sdot`` on ARMv8.2+
  ``dotprod``: 4 lanes, s8 x s8), as tensor intrinsics (TVM's ``dot_16x4_vnni`` / ``dot_4x4_i8i8s32_sdot``
  want the accumulator in global memory; these keep it in a ``local`` buffer, i.e. in registers);
- the weights are repacked at compile time to ``[O / block, KH, KW, I / 4, block, 4]`` (convolution) or
  ``[N / block, K / 4, block, 4]`` (matrix product) so each instruction loads one contiguous vector
  (the layout-rewrite mechanism of :mod:`tvmedge.tune.conv`);
- convolutions are NHWC (:mod:`tvmedge.compiler.channels_last`): the 4 channels of a pixel one instruction
  broadcasts are one 32-bit word of the input as it is, and a tile's output is one vector of channels per pixel;
- a tile of ``rows x cols`` pixels (matrix rows) times ``vectors x lanes`` output channels is accumulated in
  registers, tiles run in parallel, and the requantize (bias, scale, rounding, clamp, ReLU; a residual add) is
  fused into the write-back of each tile.

It applies to ungrouped NHWC convolutions whose input channels are a multiple of 4 and output channels a
multiple of the lanes, and to matrix products ``[M, K] x [K, N]`` with K a multiple of 4 and N of the lanes,
with the weight a function parameter (a constant at the Relax level) and the activation of the sign the
instruction wants (:func:`tvmedge.compiler.int8.match_dot_product_sign` arranges that). Other integer layers
(depthwise, grouped) keep their predicted schedule; the compiler pads a reduction that is not a multiple of 4
and output channels that are not a multiple of the lanes with zeros first
(:func:`tvmedge.compiler.int8.pad_for_dot_product`).

x86 CPUs with AVX2 but no VNNI get ``vpmaddwd`` (int16 pairs: exact, where ``vpmaddubsw`` would saturate), the
weights packed ``[.., 2, block, 2]`` (pairs of reduction elements per lane).

Targets without such an instruction (RISC-V's RVV, NEON without ``dotprod``) get the same tiling on the plain
vector path: weights packed ``[.., 4, block]``, and per reduction element one vector multiply-add of the lanes
(int8 widened to int32; LLVM picks the widening instructions).
"""

from __future__ import annotations

from typing import Optional

from .conv import CONV_ITERATION, _tile, has_feature, only_reduction, parameter_read, register_file, \
    writes_at_spatial_vars

__all__ = ["dot_product_unit", "integer_unit", "int8_schedule"]

GROUP = 4  # reduction elements per lane of one dot-product instruction (both vpdpbusd and sdot)


def dot_product_unit(target) -> Optional[tuple]:
    """``(tensor intrinsic, int32 lanes, activation dtype)`` of ``target``'s int8 dot-product instruction, or
    None when it has none."""
    if str(target.kind.name) != "llvm":
        return None
    triple = str(target.attrs.get("mtriple", "") or "")
    if triple.startswith(("aarch64", "arm64")):
        return (_intrinsic(*_SDOT), 4, "int8") if has_feature(target, "dotprod") else None
    if triple.startswith("riscv"):
        return None
    if has_feature(target, "avx512vnni"):
        return _intrinsic(*_VNNI), 16, "uint8"
    # AVX-VNNI (Alder Lake and later, e.g. the N100 of x86 mini PCs; Zen 5): the same instruction on 256 bits
    if has_feature(target, "avxvnni"):
        return _intrinsic(*_AVX_VNNI), 8, "uint8"
    # AVX2 without VNNI (Zen 2/3, Skylake): int16 pairs (vpmaddwd), exact where vpmaddubsw would saturate
    return (_pair_intrinsic(*_AVX2), 8, "uint8") if has_feature(target, "avx2") else None


def integer_unit(target) -> Optional[tuple]:
    """What the schedule builds on for ``target``: its dot-product instruction (:func:`dot_product_unit`), else
    ``(None, int32 lanes, None)`` — the plain vector path (widening multiply-adds of either sign: RISC-V's
    ``vwmacc``-style code, NEON without ``dotprod``, x86 without AVX2) — or None for a target without a vector
    unit."""
    unit = dot_product_unit(target)
    if unit is not None:
        return unit
    registers = register_file(target)
    return (None, registers[0], None) if registers is not None else None


# name, int32 lanes, activation dtype, LLVM intrinsic (operands: accumulator, broadcast activation, weights)
_VNNI = ("tvmedge_dot_16x4_u8i8i32_vnni", 16, "uint8", "llvm.x86.avx512.vpdpbusd.512")
_SDOT = ("tvmedge_dot_4x4_i8i8i32_sdot", 4, "int8", "llvm.aarch64.neon.sdot.v4i32.v16i8")
_AVX2 = ("tvmedge_dot_8x4_u8i8i32_avx2", 8, "uint8", "llvm.x86.avx2.pmadd.wd")  # weights packed in k-pairs
_PAIRED = {_AVX2[0]}  # intrinsics whose weights are packed [.., 2, lanes, 2] (pairs of reduction elements)
_AVX_VNNI = ("tvmedge_dot_8x4_u8i8i32_avxvnni", 8, "uint8", "llvm.x86.avx512.vpdpbusd.256")  # VEX-encoded w/o AVX-512


def _intrinsic(name: str, lanes: int, activation: str, llvm: str) -> str:
    """Register (once) the tensor intrinsic ``C[lanes] += sum_k A[k] * B[lanes, k]`` (k < 4) with C local."""
    from tvm.s_tir import TensorIntrin
    from tvm.script import tirx as T

    if TensorIntrin.get(name, allow_missing=True) is not None:
        return name
    from tvm.target import codegen

    # the operand type of the products: sdot's are bytes; vpdpbusd's were <16 x i32> until LLVM 21 made them bytes
    operand = f"int8x{lanes * GROUP}" if "sdot" in llvm or codegen.llvm_version_major() >= 21 else f"int32x{lanes}"

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (GROUP,), activation, offset_factor=1)
        B = T.match_buffer(b, (lanes, GROUP), "int8", offset_factor=1)
        C = T.match_buffer(c, (lanes,), "int32", offset_factor=1, scope="local")
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:GROUP], B[0:lanes, 0:GROUP])
            T.writes(C[0:lanes])
            for i, k in T.grid(lanes, GROUP):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (GROUP,), activation, offset_factor=1)
        B = T.match_buffer(b, (lanes, GROUP), "int8", offset_factor=1)
        C = T.match_buffer(c, (lanes,), "int32", offset_factor=1, scope="local")
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:GROUP], B[0:lanes, 0:GROUP])
            T.writes(C[0:lanes])
            four = T.reinterpret(A.vload([0], f"{activation}x4"), dtype="int32")
            C[T.ramp(T.int32(0), 1, lanes)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(llvm), C.vload([0], dtype=f"int32x{lanes}"),
                T.reinterpret(T.broadcast(four, lanes), dtype=operand),
                T.reinterpret(B.vload([0, 0], dtype=f"int8x{lanes * GROUP}"), dtype=operand),
                dtype=f"int32x{lanes}")

    TensorIntrin.register(name, desc, impl)
    return name


def _pair_intrinsic(name: str, lanes: int, activation: str, llvm: str) -> str:
    """Register (once) ``C[lanes] += sum_k A[k] * B[k // 2, lanes, k % 2]`` (k < 4, C local) on ``vpmaddwd``: the
    weights of each pair of reduction elements are interleaved per lane (packed at compile time), the activations
    and weights widened to int16, and each pair's two products summed into int32 lanes exactly."""
    from tvm.s_tir import TensorIntrin
    from tvm.script import tirx as T

    if TensorIntrin.get(name, allow_missing=True) is not None:
        return name
    pair = f"int16x{2 * lanes}"

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (GROUP,), activation, offset_factor=1)
        B = T.match_buffer(b, (2, lanes, 2), "int8", offset_factor=1, strides=[T.int32(), T.int32(), T.int32()])
        C = T.match_buffer(c, (lanes,), "int32", offset_factor=1, scope="local")
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:GROUP], B[0:2, 0:lanes, 0:2])
            T.writes(C[0:lanes])
            for i, k in T.grid(lanes, GROUP):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vk // 2, vi, vk % 2], "int32")

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (GROUP,), activation, offset_factor=1)
        B = T.match_buffer(b, (2, lanes, 2), "int8", offset_factor=1, strides=[T.int32(), T.int32(), T.int32()])
        C = T.match_buffer(c, (lanes,), "int32", offset_factor=1, scope="local")
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:GROUP], B[0:2, 0:lanes, 0:2])
            T.writes(C[0:lanes])
            low = T.reinterpret(T.Cast("int16x2", A.vload([0], f"{activation}x2")), dtype="int32")
            high = T.reinterpret(T.Cast("int16x2", A.vload([2], f"{activation}x2")), dtype="int32")
            C[T.ramp(T.int32(0), 1, lanes)] = C.vload([0], dtype=f"int32x{lanes}") + T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(llvm), T.Cast(pair, B.vload([0, 0, 0], dtype=f"int8x{2 * lanes}")),
                T.reinterpret(T.broadcast(low, lanes), dtype=pair), dtype=f"int32x{lanes}") + T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(llvm), T.Cast(pair, B.vload([1, 0, 0], dtype=f"int8x{2 * lanes}")),
                T.reinterpret(T.broadcast(high, lanes), dtype=pair), dtype=f"int32x{lanes}")

    TensorIntrin.register(name, desc, impl)
    return name


def _activation(read, wanted: Optional[str]) -> bool:
    """The activation is 8-bit, and of the sign the instruction multiplies (any sign for the plain path)."""
    dtype = str(read.source.dtype)
    return dtype == wanted if wanted else dtype in ("uint8", "int8")


def int8_schedule(mod, target):
    """A scheduled ``tvm.s_tir.Schedule`` of ``mod`` (one PrimFunc ``main``) as described above, or None when
    ``mod`` is not an integer layer this schedule handles on ``target``."""
    from tvm import s_tir

    unit = integer_unit(target)
    registers = register_file(target)
    if unit is None or registers is None:
        return None
    sch = s_tir.Schedule(mod)
    found = only_reduction(sch)
    if found is None:
        return None
    block_rv, block, ivs, kinds = found
    if len(block.reads) != 2 or not writes_at_spatial_vars(block, ivs) \
            or str(block.writes[0].source.dtype) != "int32":
        return None
    if kinds == CONV_ITERATION:
        return _conv(sch, block_rv, block, ivs, unit, registers[1])
    if kinds == "SSR":
        return _matmul(sch, block_rv, block, ivs, unit, registers[1])
    return None


def _operands(sch, block, ivs, weight_indices, activation, data_indices: dict) -> Optional[tuple]:
    """``(index of the weight among the block's reads, the data's read)`` when the block reads an int8 parameter at
    ``weight_indices`` and 8-bit data (of the ``activation`` sign) whose dimensions listed in ``data_indices``
    (dimension -> var) are those vars; None otherwise."""
    weight = parameter_read(sch, block, weight_indices, "int8")
    if weight is None:
        return None
    data = block.reads[1 - weight]
    if not _activation(data, activation) or any(
            dim >= len(data.region) or not data.region[dim].min.same_as(var) for dim, var in data_indices.items()):
        return None
    return weight, data


def _conv(sch, conv, block, ivs, unit, registers):
    """The NHWC convolution (:mod:`tvmedge.compiler.channels_last` puts the integer ones in NHWC): iteration
    ``n, y, x, o | ky, kx, i``, reading ``data[n, y + ky, x + kx, i]`` and ``weight[o, i, ky, kx]`` (an NCHW one
    does not match these reads: None). The 4 channels an instruction broadcasts are contiguous in the input as it
    is, so there is no repack (a padded input is written once, padding included, in parallel over rows); the
    accumulators of a tile are stored as they lie in registers, one vector of output channels per pixel."""
    intrin, lanes, activation = unit
    o, ky, kx, i = (iv.var for iv in ivs[3:])
    found = _operands(sch, block, ivs, (o, i, ky, kx), activation, {3: i})
    if found is None or len(found[1].region) != 4:
        return None
    weight = found[0]
    height, width, channels = (int(ivs[k].dom.extent) for k in (1, 2, 3))
    if int(ivs[6].dom.extent) % GROUP:
        return None
    tile = _tile(height, width, channels, lanes, registers)
    loops = sch.get_loops(conv)
    if tile is None or len(loops) != len(ivs):
        return None
    rows, cols, vectors = tile
    block_width = vectors * lanes
    root = sch.get_sblock("root", "main")
    padded = []
    for pad in [b for b in sch.get_child_blocks(root) if sch.get(b).name_hint.startswith("pad")]:
        if "if_then_else" in str(sch.get(pad).body):  # a pass of its own: no bounds checks in the inner loop
            padded.append(sch.get(pad).name_hint)
            a, b, c, d = sch.get_loops(pad)
            sch.parallel(sch.fuse(a, b))
            if int(sch.get(d).extent) % (lanes * GROUP) == 0:
                sch.vectorize(sch.split(d, [None, lanes * GROUP])[1])
        else:
            sch.compute_inline(pad)  # no padding: read the input itself
    n, y, x, o, ky, kx, i = loops
    o_outer, o_vector, o_lane = sch.split(o, [None, vectors, lanes])
    y_outer, y_inner = sch.split(y, [None, rows])
    x_outer, x_inner = sch.split(x, [None, cols])
    i_outer, i_inner = sch.split(i, [None, GROUP])
    if intrin:  # one instruction: lanes x 4 products
        sch.reorder(n, o_outer, y_outer, x_outer, ky, kx, i_outer, y_inner, x_inner, o_vector, o_lane, i_inner)
    else:  # per reduction element, one vector multiply-add of the lanes
        sch.reorder(n, o_outer, y_outer, x_outer, ky, kx, i_outer, y_inner, x_inner, o_vector, i_inner, o_lane)
    tiles = sch.fuse(n, o_outer, y_outer, x_outer)  # channel blocks outermost: a block's weights stay in cache
    sch.parallel(tiles)
    packed = sch.cache_read(conv, weight, "global")
    sch.annotate(packed, "meta_schedule.layout_rewrite_preproc", True)
    if intrin in _PAIRED:
        sch.transform_layout(conv, ("read", weight), lambda a, b, c, d: (
            a // block_width, c, d, b // GROUP, b % GROUP // 2, a % block_width, b % 2))
    elif intrin:
        sch.transform_layout(conv, ("read", weight), lambda a, b, c, d: (
            a // block_width, c, d, b // GROUP, a % block_width, b % GROUP))
    else:
        sch.transform_layout(conv, ("read", weight), lambda a, b, c, d: (
            a // block_width, c, d, b // GROUP, b % GROUP, a % block_width))
    accumulate = sch.cache_write(conv, 0, "local")  # [n, y, x, o]: vectors of channels, in registers
    sch.reverse_compute_at(accumulate, tiles)
    if not intrin:
        sch.vectorize(o_lane)
    init = sch.decompose_reduction(conv, ky)
    sch.vectorize(sch.get_loops(init)[-1])
    _fuse_consumers(sch, root, {sch.get(b).name_hint for b in (conv, accumulate, init, packed)} | set(padded), tiles)
    # the write-back (and requantize): channels innermost, contiguous in the output
    sch.vectorize(sch.split(sch.get_loops(accumulate)[-1], [None, lanes])[1])
    if intrin:
        sch.tensorize(o_lane, intrin)
    else:
        sch.unroll(i_inner)
    sch.unroll(y_inner)
    sch.unroll(x_inner)
    sch.unroll(o_vector)
    return sch


def _matmul(sch, matmul, block, ivs, unit, registers):
    intrin, lanes, activation = unit
    m, n, k = (iv.var for iv in ivs)
    found = _operands(sch, block, ivs, (k, n), activation, {0: m, 1: k})
    if found is None or len(found[1].region) != 2:
        return None
    weight = found[0]
    rows_total, columns, depth = (int(iv.dom.extent) for iv in ivs)
    if depth % GROUP:
        return None
    tile = _tile(rows_total, 1, columns, lanes, registers)
    loops = sch.get_loops(matmul)
    if tile is None or len(loops) != 3:
        return None
    rows, _, vectors = tile
    # a matrix-vector product streams its weights: keep at least two tiles per core busy
    while vectors > 1 and columns // (vectors * lanes) < 4:
        vectors //= 2 if vectors % 2 == 0 else vectors
    if columns % (vectors * lanes):
        return None
    block_width = vectors * lanes
    root = sch.get_sblock("root", "main")
    i, j, r = loops
    i_outer, i_inner = sch.split(i, [None, rows])
    j_outer, j_vector, j_lane = sch.split(j, [None, vectors, lanes])
    r_outer, r_inner = sch.split(r, [None, GROUP])
    if intrin:
        sch.reorder(j_outer, i_outer, r_outer, i_inner, j_vector, j_lane, r_inner)
    else:
        sch.reorder(j_outer, i_outer, r_outer, i_inner, j_vector, r_inner, j_lane)
    tiles = sch.fuse(j_outer, i_outer)
    sch.parallel(tiles)
    packed = sch.cache_read(matmul, weight, "global")
    sch.annotate(packed, "meta_schedule.layout_rewrite_preproc", True)
    if intrin in _PAIRED:
        sch.transform_layout(matmul, ("read", weight), lambda a, b: (
            b // block_width, a // GROUP, a % GROUP // 2, b % block_width, a % 2))
    elif intrin:
        sch.transform_layout(matmul, ("read", weight), lambda a, b: (
            b // block_width, a // GROUP, b % block_width, a % GROUP))
    else:
        sch.transform_layout(matmul, ("read", weight), lambda a, b: (
            b // block_width, a // GROUP, a % GROUP, b % block_width))
    accumulate = sch.cache_write(matmul, 0, "local")
    sch.reverse_compute_at(accumulate, tiles)
    if not intrin:
        sch.vectorize(j_lane)
    init = sch.decompose_reduction(matmul, r_outer)
    sch.vectorize(sch.get_loops(init)[-1])
    _fuse_consumers(sch, root, {sch.get(b).name_hint for b in (matmul, accumulate, init, packed)}, tiles)
    sch.vectorize(sch.split(sch.get_loops(accumulate)[-1], [None, lanes])[1])  # the write-back and requantize
    if intrin:
        sch.tensorize(j_lane, intrin)
    else:
        sch.unroll(r_inner)
    sch.unroll(i_inner)
    sch.unroll(j_vector)
    return sch


def _fuse_consumers(sch, root, ours: set, tiles) -> None:
    """The requantize chain (bias, cast, scale, round, clamp; a residual add's other input) into each tile's
    write-back. First every elementwise block that can be is inlined into its consumer (the other input of a
    quantized add is dequantized by blocks that read only a parameter: moved under the tile loop they would be
    recomputed whole for every tile), then the rest of the chain into the write-back."""
    for block in [b for b in sch.get_child_blocks(root) if sch.get(b).name_hint not in ours]:
        try:
            sch.compute_inline(block)
        except Exception:  # noqa: BLE001 - writes the output, or not inlinable: left to the loop below
            pass
    for consumer in [b for b in sch.get_child_blocks(root) if sch.get(b).name_hint not in ours]:
        try:
            sch.reverse_compute_inline(consumer)
        except Exception:  # noqa: BLE001 - not a plain elementwise consumer: computed per tile instead
            sch.reverse_compute_at(consumer, tiles)
