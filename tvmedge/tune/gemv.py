"""The GEMV schedule of LM graphs: matrix-vector products (``[..., 1, K] x [..., K, N]``, a decode step) and the
prefill's products with the same weights (``[..., M, K] x [K, N]``), without measuring.

A language model's decode graph is a chain of matrix-vector products (one token: M == 1), and each reads its
whole weight matrix once, so its speed is how close it comes to streaming the weights at memory bandwidth. The
no-search and predicted schedules treat them as small matmuls; this one is written for them:

- the output axis N is split into tiles of 4 vectors (4 x the target's SIMD lanes): four independent
  accumulators per tile and row, kept in registers (a ``local`` accumulator written back once per tile);
- a constant weight (marked by :func:`mark_constant_weights`) is repacked at compile time from ``[K, N]`` to
  ``[N / tile, K, tile]``, so each tile's weights are one contiguous stream: read as ``[K, N]``, every K step
  of a tile lands on another memory page, which held a decode step to about half the read bandwidth. The
  prefill's products get the same schedule with rows of A in register blocks (as many as the vector registers
  hold), so both graphs read the one packed copy of each weight;
- tiles (with any batch axes, e.g. attention heads, and row blocks) are spread over the cores (``parallel``);
- K is split by 4 and unrolled;
- element-wise producers (a mask) are inlined and the consumers fused into the write-back (bias, GELU).

It applies to a fused function with exactly one reduction block whose weight operand is indexed ``[..., k, n]``
(N contiguous), with N a multiple of the SIMD lanes; anything else keeps its usual schedule. An operand that is
an input (attention's KV cache) is read as it lies. Used for LM artifacts (``TuningOptions(gemv=True)``, which
``compile`` of an LM package sets); the manifest's tuning block names these tasks' source ``gemv``. A measured
record still wins over it.
"""

from __future__ import annotations

from typing import Optional

__all__ = ["gemv_schedule", "gemv_database", "vector_lanes", "mark_constant_weights"]

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


def _matmul_axes(block) -> Optional[tuple]:
    """``(index of the n axis among the block's iter vars, k's, m's or None, index of B among the block's reads)``
    when ``block`` computes
    ``C[..., m, n] += A[..., m, k] * B[..., k, n]`` with N contiguous in B (M may be 1: a matrix-vector
    product); None otherwise."""
    from tvm.tirx import IterVar

    ivs = list(block.iter_vars)
    reduce = [i for i, iv in enumerate(ivs) if iv.iter_type == IterVar.CommReduce]
    if len(reduce) != 1 or len(block.writes) != 1 or len(block.reads) != 2:
        return None
    k = ivs[reduce[0]].var
    out = block.writes[0]
    if len(out.region) < 2:
        return None
    n_index, m_index = out.region[-1].min, out.region[-2].min
    n_pos = next((i for i, iv in enumerate(ivs) if iv.var.same_as(n_index)), None)
    m_pos = next((i for i, iv in enumerate(ivs) if iv.var.same_as(m_index)), None)
    if n_pos is None or (m_pos is None and int(out.source.shape[-2]) != 1):
        return None
    weight = [i for i, r in enumerate(block.reads) if len(r.region) >= 2 and r.region[-1].min.same_as(n_index)
              and r.region[-2].min.same_as(k)]
    vector = [r for r in block.reads if r.region[-1].min.same_as(k)]
    if len(weight) != 1 or len(vector) != 1:
        return None
    return n_pos, reduce[0], m_pos, weight[0]


def _product(sch) -> Optional[tuple]:
    """``(the function's blocks, its one reduction block, that block's :func:`_matmul_axes`)`` when the function
    in ``sch`` is one product of the form this schedule handles, else None."""
    try:
        blocks = sch.get_child_blocks(sch.get_sblock("root", "main"))
    except Exception:  # noqa: BLE001 - no root block: not a fused function of the usual shape
        return None
    reduction = _reduction_block(sch, blocks)
    found = _matmul_axes(sch.get(reduction)) if reduction is not None else None
    return (blocks, reduction, found) if found is not None else None


def _constant_weight(sch, block, read: int) -> bool:
    """True when ``block``'s read ``read`` (its weight) is 2-D and a constant of the Relax module (a
    ``layout_free_buffers`` parameter, kept by :func:`mark_constant_weights` for LM compiles): a weight that is
    an input (a KV cache in attention) is read as it lies, never repacked per call."""
    func = sch.mod["main"]
    free = {int(i) for i in ((func.attrs or {}).get("layout_free_buffers", None) or [])}
    weight = block.reads[read]
    index = next((i for i, param in enumerate(func.params) if param.same_as(weight.source)), None)
    return index is not None and index in free and len(weight.region) == 2


def _repacks(func) -> bool:
    """True when :func:`gemv_schedule` would repack ``func``'s weight (a product whose weight is marked constant)."""
    import tvm
    from tvm import s_tir

    sch = s_tir.Schedule(tvm.IRModule({"main": func}))
    product = _product(sch)
    if product is None:
        return False
    _, reduction, found = product
    return _constant_weight(sch, sch.get(reduction), found[3])


def mark_constant_weights(mod):
    """``mod`` (legalized and fused) with the products whose weight is a constant marked so (TVM's
    ``layout_free_buffers``), for :func:`gemv_schedule` to repack them at compile time, and nothing else marked.

    TVM's pass marks the constant arguments of every kernel; the marks are kept on those products only, because
    a mark makes a task another task (it is part of its hash: records of unmarked tasks would no longer match)
    and MetaSchedule's tuning rewrites the layout of marked buffers, which only prepacking makes right."""
    import tvm
    from tvm import relax

    marked = relax.transform.AttachAttrLayoutFreeBuffers()(mod)
    for gv, func in list(marked.functions.items()):
        if isinstance(func, tvm.tirx.PrimFunc) and "layout_free_buffers" in (func.attrs or {}) and not _repacks(func):
            marked[gv] = func.without_attr("layout_free_buffers")
    return marked


def _wide_tile(target, ivs, n_pos: int, k_pos: int, tile: int) -> int:
    """The tile of a matrix-vector product over an input that cannot be repacked (attention over the KV cache):
    whole rows of N when the registers hold them and the batch axes alone still give every core a few jobs, so
    each job streams one contiguous block instead of a strip of short rows."""
    from .conv import register_file

    registers = register_file(target)
    n_extent = int(ivs[n_pos].dom.extent)
    jobs = 1
    for i, iv in enumerate(ivs):
        if i not in (n_pos, k_pos):
            jobs *= int(iv.dom.extent)
    most = (registers[1] - 4) * registers[0] if registers else tile  # accumulators; a few registers for the rest
    cores = int(target.attrs.get("num-cores", 0) or 1)
    if n_extent <= most and jobs >= 4 * cores:  # (tile divides N: whole rows are whole vectors too)
        return n_extent
    return tile


def _rows(target, m_extent: int) -> int:
    """Rows of A per register tile: as many as the vector registers hold next to a tile's weights (one row for a
    decode step), and a divisor of M."""
    from .conv import register_file

    registers = register_file(target)
    most = max(1, (registers[1] - VECTORS_PER_TILE - 1) // VECTORS_PER_TILE) if registers else 1
    return next(r for r in range(min(most, m_extent), 0, -1) if m_extent % r == 0)


def gemv_schedule(mod, target):
    """A scheduled ``tvm.s_tir.Schedule`` of ``mod`` (one PrimFunc ``main``) as described above, or None when
    ``mod`` is not a product this schedule handles."""
    import tvm
    from tvm import s_tir

    sch = s_tir.Schedule(mod)
    product = _product(sch)
    if product is None:
        return None
    blocks, reduction, (n_pos, k_pos, m_pos, weight_read) = product
    block = sch.get(reduction)
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
    weight = weight_read if _constant_weight(sch, block, weight_read) else None
    if weight is None and (m_pos is None or int(ivs[m_pos].dom.extent) == 1):
        tile = _wide_tile(target, ivs, n_pos, k_pos, tile)
    # element-wise producers (masks, reshapes) into their consumers: one pass over the data
    for other in blocks:
        if not sch.get(other).same_as(sch.get(reduction)):
            try:
                sch.compute_inline(other)
            except Exception:  # noqa: BLE001 - an output block, or one that cannot be inlined: kept
                pass
    rows = _rows(target, int(ivs[m_pos].dom.extent)) if m_pos is not None else 1
    spatial = [loop for i, loop in enumerate(loops) if i not in (n_pos, k_pos, m_pos)]
    n_outer, n_inner = sch.split(loops[n_pos], [None, tile])
    m_outer, m_inner = sch.split(loops[m_pos], [None, rows]) if m_pos is not None else (None, None)
    k_outer, k_inner = sch.split(loops[k_pos], [None, UNROLL_K]) if int(ivs[k_pos].dom.extent) % UNROLL_K == 0 \
        else (loops[k_pos], None)
    order = spatial + [n_outer] + ([m_outer] if m_outer is not None else []) + [k_outer] \
        + ([k_inner] if k_inner is not None else []) + ([m_inner] if m_inner is not None else []) + [n_inner]
    sch.reorder(*order)
    # column tiles outermost, then the row blocks that share a tile's weights (they stay in cache)
    outer = sch.fuse(*spatial, n_outer, *([m_outer] if m_outer is not None else []))
    sch.parallel(outer)
    if weight is not None:
        # the weights as [n / tile, k, tile]: each tile's columns one contiguous stream, where [k, n] made every K
        # step of a tile a read on another memory page. Repacked at compile time (prepack_weights folds it), once
        # for the prefill and the decode graph alike: both read the same tensor
        packed = sch.cache_read(reduction, weight, "global")
        sch.annotate(packed, "meta_schedule.layout_rewrite_preproc", True)
        sch.transform_layout(reduction, ("read", weight), lambda k, n: (n // tile, k, n % tile))
    accumulate = sch.cache_write(reduction, 0, "local")
    sch.reverse_compute_at(accumulate, outer)
    if k_inner is not None:
        sch.unroll(k_inner)
    if m_inner is not None:
        sch.unroll(m_inner)
    sch.vectorize(n_inner)  # before the init is split off: the update alone is no longer a reduction block
    init = sch.decompose_reduction(reduction, k_outer)
    sch.vectorize(sch.get_loops(init)[-1])
    # consumers of the product (bias, activation) fused into the write-back, then the write-back vectorised
    ours = {sch.get(b).name_hint for b in (reduction, accumulate, init)} | (
        {sch.get(packed).name_hint} if weight is not None else set())
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
