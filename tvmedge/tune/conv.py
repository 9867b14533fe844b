"""A register-tile schedule for float convolutions, written rather than searched: what ``--search none`` gets.

The predicted schedules (:mod:`tvmedge.tune.predict`) are MetaSchedule's NCHW loop nests. Their vector loop is
the output width, which is short (13 lanes on squeezenet's last layer, 7 on resnet50's) and the frozen cost model
ranks the tilings poorly: measured 4-45 GFLOP/s per layer on this project's 141 GFLOP/s host. This schedule is
the direct-convolution micro-kernel of the hand-written CPU libraries, expressed as a TIR schedule of the same
workload (so tuning records still key on it and still win over it):

- output channels are the vector axis: ``vectors`` x the target's SIMD lanes per tile;
- the weights are repacked once, at compile time, to ``[O / tile, I, KH, KW, tile]`` so each step of the
  reduction reads one contiguous vector per channel block (MetaSchedule's layout-rewrite mechanism: a
  ``cache_read`` marked ``meta_schedule.layout_rewrite_preproc``; :func:`prepack_weights` splits it out and
  folds it into the constants);
- a tile of ``rows x cols`` output pixels times those channels is accumulated in registers (a ``local``
  accumulator, fully unrolled), as many accumulators as the register file holds besides the weight vectors and
  one broadcast input; each step broadcasts one input value per pixel and issues one FMA per accumulator;
- tiles are spread over the cores (``parallel``); padding is computed per tile, consumers (bias, ReLU, a
  residual add) are fused into the write-back.

It applies to a fused function with one reduction block that is a 2-D NCHW float32 convolution, grouped or not
(a channel block stays inside one group, so the groups' output channels must be a multiple of the lanes; depthwise
convolutions are not) whose weight is a function parameter (a constant at the Relax level); anything else keeps
its predicted schedule. Used by ``--search none``/``quick`` for tasks without a
record (``TuningOptions.conv``); the manifest's tuning block names these tasks' source ``conv``.
"""

from __future__ import annotations

from typing import Optional

__all__ = ["conv_schedule", "conv_database", "register_file", "has_feature", "prepack_weights", "only_reduction",
           "parameter_read", "writes_at_spatial_vars"]

CONV_ITERATION = "SSSSRRR"  # n, o, y, x | i, ky, kx: the iteration of TOPI's conv2d_nchw
MAX_ACCUMULATORS = 24  # beyond this the unrolled tile only grows the code


def register_file(target) -> Optional[tuple]:
    """``(float32 lanes per vector register, vector registers)`` of ``target``, or None for a target without a
    vector unit. (LLVM's own "vector width" says 512 bits for AVX2-only x86 CPUs; the features do not lie.)"""
    if str(target.kind.name) != "llvm":
        return None

    def has(feature: str) -> bool:
        return has_feature(target, feature)

    triple = str(target.attrs.get("mtriple", "") or "")
    if triple.startswith(("aarch64", "arm64")):
        return (4, 32) if has("neon") else None
    if triple.startswith("riscv"):
        if not has("v"):
            return None
        vlen = max([bits for bits in (128, 256, 512, 1024) if has(f"zvl{bits}b")] or [128])
        return vlen // 32, 32
    if has("avx512f"):
        return 16, 32
    if has("avx"):
        return 8, 16
    return (4, 16) if has("sse2") else None


def has_feature(target, feature: str) -> bool:
    """Whether LLVM says ``target`` (an llvm target) has ``feature`` (False for a feature it does not know)."""
    from tvm.target import codegen

    try:
        return bool(codegen.target_has_features(feature, target))
    except Exception:  # noqa: BLE001 - a feature LLVM does not know for this target
        return False


def _tile(out_height: int, out_width: int, channels: int, lanes: int, registers: int) -> Optional[tuple]:
    """``(rows, cols, vectors)``: the most accumulators that fit beside the weight vectors and a broadcast,
    rows dividing the output height and cols its width (no partial tiles: no guards in the inner loop)."""
    best = None
    for vectors in (1, 2, 3, 4):
        if channels % (vectors * lanes):
            continue
        budget = min(registers - vectors - 1, MAX_ACCUMULATORS)
        for cols in (c for c in range(1, out_width + 1) if out_width % c == 0):
            for rows in (r for r in range(1, out_height + 1) if out_height % r == 0):
                if rows * cols * vectors > budget:
                    break
                key = (rows * cols * vectors, cols, vectors)  # most accumulators; then long contiguous rows
                if best is None or key > best[0]:
                    best = (key, rows, cols, vectors)
    return best[1:] if best else None


def only_reduction(sch) -> Optional[tuple]:
    """``(block RV, block, iter vars, their kinds as a string like "SSSSRRR")`` of the only reduction block of a
    fused function; None when it has several, none, or no root block (not a fused function of the usual shape)."""
    from tvm.tirx import IterVar

    try:
        blocks = sch.get_child_blocks(sch.get_sblock("root", "main"))
    except Exception:  # noqa: BLE001 - no root block
        return None
    reductions = [b for b in blocks if any(iv.iter_type == IterVar.CommReduce for iv in sch.get(b).iter_vars)]
    if len(reductions) != 1:
        return None
    block = sch.get(reductions[0])
    ivs = list(block.iter_vars)
    return reductions[0], block, ivs, "".join("R" if iv.iter_type == IterVar.CommReduce else "S" for iv in ivs)


def writes_at_spatial_vars(block, ivs) -> bool:
    """The block has one output, written at its spatial iter vars in order (``out[n, o, y, x]``)."""
    from tvm.tirx import IterVar

    rank = sum(1 for iv in ivs if iv.iter_type != IterVar.CommReduce)
    out = block.writes[0].region if len(block.writes) == 1 else []
    return len(out) == rank and all(out[k].min.same_as(ivs[k].var) for k in range(rank))


def parameter_read(sch, block, indices, dtype: str) -> Optional[int]:
    """The index among ``block``'s reads of the one function parameter (a constant at the Relax level, not a buffer
    allocated inside) of ``dtype`` read exactly at ``indices``; None when there is not exactly one."""
    allocated = list(sch.get(sch.get_sblock("root", "main")).alloc_buffers)
    found = [n for n, read in enumerate(block.reads)
             if str(read.source.dtype) == dtype and not any(read.source.same_as(b) for b in allocated)
             and len(read.region) == len(indices) and all(r.min.same_as(v) for r, v in zip(read.region, indices))]
    return found[0] if len(found) == 1 else None


def _convolution(sch) -> Optional[tuple]:
    """``(block, index of the weight among its reads, output channels per group)`` when the function's only
    reduction is an NCHW float32 convolution reading a parameter as ``[o, i, ky, kx]``; None otherwise."""
    found = only_reduction(sch)
    if found is None:
        return None
    rv, block, ivs, kinds = found
    if kinds != CONV_ITERATION or len(block.reads) != 2 or not writes_at_spatial_vars(block, ivs) \
            or str(block.writes[0].source.dtype) != "float32":
        return None
    o, i, ky, kx = (iv.var for iv in (ivs[1], ivs[4], ivs[5], ivs[6]))
    weight = parameter_read(sch, block, (o, i, ky, kx), "float32")
    if weight is None:
        return None
    data = block.reads[1 - weight].region
    per_group = _output_channels_per_group(data[1].min, o, i, int(ivs[1].dom.extent)) if len(data) == 4 else None
    if per_group is None:
        return None
    return rv, weight, per_group


def _output_channels_per_group(index, o, i, channels: int) -> Optional[int]:
    """How many output channels share their input channels, from the input channel a convolution reads:
    ``i`` (one group: all of them) or TOPI's grouped ``o // k * m + i`` (k); None for anything else."""
    if index.same_as(i):
        return channels
    kind = lambda e, name: type(e).__name__ == name  # noqa: E731 - TIR node classes by name across TVM versions
    if kind(index, "Add") and index.b.same_as(i) and kind(index.a, "Mul") and kind(index.a.a, "FloorDiv") \
            and index.a.a.a.same_as(o) and kind(index.a.a.b, "IntImm"):
        return int(index.a.a.b.value)
    return None


def conv_schedule(mod, target):
    """A scheduled ``tvm.s_tir.Schedule`` of ``mod`` (one PrimFunc ``main``) as described above, or None when
    ``mod`` is not a convolution this schedule handles (or ``target`` has no vector unit)."""
    from tvm import s_tir

    registers = register_file(target)
    if registers is None:
        return None
    lanes, count = registers
    sch = s_tir.Schedule(mod)
    found = _convolution(sch)
    if found is None:
        return None
    conv, weight, per_group = found
    ivs = list(sch.get(conv).iter_vars)
    # a channel block never straddles two groups: all its lanes read the same input channel (a broadcast)
    tile = _tile(int(ivs[2].dom.extent), int(ivs[3].dom.extent), per_group, lanes, count)
    loops = sch.get_loops(conv)
    if tile is None or len(loops) != len(ivs):
        return None
    rows, cols, vectors = tile
    block_width = vectors * lanes
    root = sch.get_sblock("root", "main")
    producers = [b for b in sch.get_child_blocks(root) if sch.get(b).name_hint.startswith("pad")]
    n, o, y, x, i, ky, kx = loops
    o_outer, o_inner = sch.split(o, [None, block_width])
    y_outer, y_inner = sch.split(y, [None, rows])
    x_outer, x_inner = sch.split(x, [None, cols])
    sch.reorder(n, o_outer, y_outer, x_outer, i, ky, kx, y_inner, x_inner, o_inner)
    tiles = sch.fuse(n, o_outer, y_outer, x_outer)  # channel blocks outermost: a block's weights stay in cache
    sch.parallel(tiles)
    for pad in producers:
        if "if_then_else" in str(sch.get(pad).body):
            sch.compute_at(pad, tiles)  # the padded window of this tile, next to its use
        else:
            sch.compute_inline(pad)  # no padding: a plain copy, read the input itself
    # the weights as [o / block, i, ky, kx, block]: one contiguous vector per reduction step, repacked at compile
    # time (the preproc block becomes a function of its own that constant folding runs: prepack_weights)
    packed = sch.cache_read(conv, weight, "global")
    sch.annotate(packed, "meta_schedule.layout_rewrite_preproc", True)
    sch.transform_layout(conv, ("read", weight), lambda a, b, c, d: (a // block_width, b, c, d, a % block_width))
    accumulate = sch.cache_write(conv, 0, "local")
    # the accumulator tile as [y, x, o]: the vector axis contiguous, so it lives in registers
    sch.transform_layout(conv, ("write", 0), lambda a, b, c, d: (a, c, d, b))
    sch.reverse_compute_at(accumulate, tiles)
    sch.unroll(y_inner)
    sch.unroll(x_inner)
    sch.vectorize(o_inner)
    init = sch.decompose_reduction(conv, i)
    sch.vectorize(sch.get_loops(init)[-1])
    ours = {sch.get(b).name_hint for b in (conv, accumulate, init, packed)}
    for consumer in [b for b in sch.get_child_blocks(sch.get_sblock("root", "main"))
                     if sch.get(b).name_hint not in ours and not sch.get(b).name_hint.startswith("pad")]:
        try:
            sch.reverse_compute_inline(consumer)  # bias, activation, residual: into the write-back
        except Exception:  # noqa: BLE001
            sch.reverse_compute_at(consumer, tiles)
    return sch


def conv_database(tasks, target) -> tuple:
    """``(MetaSchedule MemoryDatabase with the schedule of every task it applies to, their names)``; a measured
    record wins over it (:func:`tvmedge.tune.apply.written_database`)."""
    from .apply import written_database, written_schedules

    return written_database(tasks, target, written_schedules(tasks, target, conv_schedule))


def _with_root_block(func):
    """``func`` with its body in an opaque block under a root block, the block tree SplitLayoutRewritePreproc
    expects of every PrimFunc; kernels written as plain loops (the INT4 matmul, the cache write) have none. The
    blocks change nothing else."""
    import tvm
    from tvm import s_tir

    if not isinstance(func, tvm.tirx.PrimFunc) or isinstance(func.body, s_tir.SBlockRealize):
        return func
    kernel = s_tir.SBlockRealize([], True, s_tir.SBlock([], [], [], "kernel", func.body))  # one opaque leaf
    return func.with_body(s_tir.SBlockRealize([], True, s_tir.SBlock([], [], [], "root", kernel)))


def prepack_weights(mod):
    """``mod`` with every weight repack a schedule asked for (``meta_schedule.layout_rewrite_preproc``) split into
    its own function, run on the constants at compile time, and the functions nobody calls any more removed."""
    import tvm
    from tvm import relax

    for gv, func in list(mod.functions.items()):
        mod[gv] = _with_root_block(func)
    return tvm.transform.Sequential([
        relax.transform.SplitLayoutRewritePreproc(),
        relax.transform.FoldConstant(),
        relax.transform.DeadCodeElimination(),
    ])(mod)
