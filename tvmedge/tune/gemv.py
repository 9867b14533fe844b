"""A GEMV schedule for decode steps: matrix-vector products (``[..., 1, K] x [..., K, N]``) without measuring.

A language model's decode graph is a chain of such products (one token: M == 1), and each reads its whole weight
matrix once, so its speed is how close it comes to streaming the weights at memory bandwidth. The no-search and
predicted schedules treat them as small matmuls; this one is written for them:

- the output axis N is split into tiles of 4 vectors (4 x the target's SIMD lanes): four independent
  accumulators per tile, kept in registers (a ``local`` accumulator written back once per tile);
- tiles (with any batch axes, e.g. attention heads) are spread over the cores (``parallel``);
- K is split by 4 and unrolled, so each step reads 4 rows of the weight tile contiguously;
- element-wise producers (a mask) are inlined and the consumers fused into the write-back (bias, GELU).

It applies to a fused function with exactly one reduction block whose output has M == 1 and whose weight
operand is indexed ``[..., k, n]`` (N contiguous), with N a multiple of the SIMD lanes; anything else keeps its
usual schedule. Used for LM artifacts (``TuningOptions(gemv=True)``, which ``compile`` of an LM package sets);
the manifest's tuning block names these tasks' source ``gemv``. A measured record still wins over it.
"""

from __future__ import annotations

from typing import Optional

__all__ = ["gemv_schedule", "gemv_database", "vector_lanes"]

UNROLL_K = 4
VECTORS_PER_TILE = 4


def vector_lanes(target, dtype_bits: int = 32) -> int:
    """SIMD lanes of ``dtype_bits`` elements on ``target`` (LLVM's vector width; 128-bit when unknown)."""
    from tvm.target import codegen

    try:
        width = int(codegen.llvm_get_vector_width(target))
    except Exception:  # noqa: BLE001 - a target LLVM cannot describe: a conservative width
        width = 128
    return max(1, (width if width > 0 else 128) // dtype_bits)


def _reduction_block(sch, blocks):
    from tvm.tirx import IterVar

    reductions = [b for b in blocks if any(iv.iter_type == IterVar.CommReduce for iv in sch.get(b).iter_vars)]
    return reductions[0] if len(reductions) == 1 else None


def _is_gemv(block) -> Optional[tuple]:
    """``(index of the n axis among the block's iter vars, k's index)`` when ``block`` computes
    ``C[..., 1?, n] += A[..., k] * B[..., k, n]`` with N contiguous in B; None otherwise."""
    from tvm.tirx import IterVar

    ivs = list(block.iter_vars)
    reduce = [i for i, iv in enumerate(ivs) if iv.iter_type == IterVar.CommReduce]
    if len(reduce) != 1 or len(block.writes) != 1 or len(block.reads) != 2:
        return None
    k = ivs[reduce[0]].var
    out = block.writes[0]
    if len(out.region) < 2 or int(out.source.shape[-2]) != 1:
        return None  # M != 1: a matmul, not a matrix-vector product
    n_index = out.region[-1].min
    n_pos = next((i for i, iv in enumerate(ivs) if iv.var.same_as(n_index)), None)
    if n_pos is None:
        return None
    weight = [r for r in block.reads if len(r.region) >= 2 and r.region[-1].min.same_as(n_index)
              and r.region[-2].min.same_as(k)]
    vector = [r for r in block.reads if r.region[-1].min.same_as(k)]
    if len(weight) != 1 or len(vector) != 1:
        return None
    return n_pos, reduce[0]


def gemv_schedule(mod, target):
    """A scheduled ``tvm.s_tir.Schedule`` of ``mod`` (one PrimFunc ``main``) as described above, or None when
    ``mod`` is not a GEMV this schedule handles."""
    import tvm
    from tvm import s_tir

    sch = s_tir.Schedule(mod)
    try:
        blocks = sch.get_child_blocks(sch.get_sblock("root", "main"))
    except Exception:  # noqa: BLE001 - no root block: not a fused function of the usual shape
        return None
    reduction = _reduction_block(sch, blocks)
    if reduction is None:
        return None
    block = sch.get(reduction)
    found = _is_gemv(block)
    if found is None:
        return None
    n_pos, k_pos = found
    dtype = block.writes[0].source.dtype
    lanes = vector_lanes(target, tvm.DataType(dtype).bits)
    ivs = list(block.iter_vars)
    n_extent = int(ivs[n_pos].dom.extent)
    tile = next((v * lanes for v in (VECTORS_PER_TILE, 2, 1) if n_extent % (v * lanes) == 0), None)
    if tile is None:
        return None
    loops = sch.get_loops(reduction)
    if len(loops) != len(ivs):
        return None  # loops and iter vars do not map one to one (already transformed)
    # element-wise producers (masks, reshapes) into their consumers: one pass over the data
    for other in blocks:
        if not sch.get(other).same_as(sch.get(reduction)):
            try:
                sch.compute_inline(other)
            except Exception:  # noqa: BLE001 - an output block, or one that cannot be inlined: kept
                pass
    spatial = [loop for i, loop in enumerate(loops) if i not in (n_pos, k_pos)]
    n_outer, n_inner = sch.split(loops[n_pos], [None, tile])
    k_outer, k_inner = sch.split(loops[k_pos], [None, UNROLL_K]) if int(ivs[k_pos].dom.extent) % UNROLL_K == 0 \
        else (loops[k_pos], None)
    order = spatial + [n_outer, k_outer] + ([k_inner] if k_inner is not None else []) + [n_inner]
    sch.reorder(*order)
    outer = sch.fuse(*spatial, n_outer) if spatial else n_outer
    sch.parallel(outer)
    accumulate = sch.cache_write(reduction, 0, "local")
    sch.reverse_compute_at(accumulate, outer)
    if k_inner is not None:
        sch.unroll(k_inner)
    sch.vectorize(n_inner)  # before the init is split off: the update alone is no longer a reduction block
    init = sch.decompose_reduction(reduction, k_outer)
    sch.vectorize(sch.get_loops(init)[-1])
    # consumers of the product (bias, activation) fused into the write-back, then the write-back vectorised
    ours = {sch.get(b).name_hint for b in (reduction, accumulate, init)}
    consumers = [b for b in sch.get_child_blocks(sch.get_sblock("root", "main")) if sch.get(b).name_hint not in ours]
    for consumer in consumers:
        try:
            sch.reverse_compute_inline(consumer)
        except Exception:  # noqa: BLE001
            try:
                sch.reverse_compute_at(consumer, outer)
                sch.vectorize(sch.get_loops(consumer)[-1])
            except Exception:  # noqa: BLE001 - left where it is (a small element-wise loop)
                pass
    sch.vectorize(sch.get_loops(accumulate)[-1])
    return sch


def gemv_database(tasks, target):
    """``(MetaSchedule MemoryDatabase with the GEMV schedule of every task it applies to, their names)``; a
    measured record wins over it (:func:`tvmedge.tune.apply.written_database`)."""
    from .apply import written_database, written_schedules

    return written_database(tasks, target, written_schedules(tasks, target, gemv_schedule))
