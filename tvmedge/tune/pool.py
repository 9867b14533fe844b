"""A written schedule for 2-D pooling (max or sum over a window), float or integer: what ``--search none`` gets.

The predicted schedules ran squeezenet's uint8 max-pools at 4-5 GOP/s, a quarter of its integer model's time.
Pooling is a stream: each output row reads ``KH`` input rows once. This schedule walks it that way:

- output rows of every channel in parallel (``n * c * h`` tiles);
- per row, the window loops outside and the output columns inside, vectorised: each step is one (strided)
  vector load and one vector max (or add) into an accumulator row that stays in registers (``local``);
- the padding is computed in the load (``if_then_else``), consumers (an average's divide, a requantize) are
  fused into the row's write-back.

It applies to a fused function with one reduction block of iteration ``n, c, y, x | ky, kx`` writing its output
at ``[n, c, y, x]``; anything else keeps its predicted schedule.
"""

from __future__ import annotations

from .conv import only_reduction, writes_at_spatial_vars

__all__ = ["pool_schedule"]

POOL_ITERATION = "SSSSRR"


def pool_schedule(mod, target):
    """A scheduled ``tvm.s_tir.Schedule`` of ``mod`` (one PrimFunc ``main``), or None when ``mod`` is not a
    pooling this schedule handles."""
    from tvm import s_tir

    if str(target.kind.name) != "llvm":
        return None
    sch = s_tir.Schedule(mod)
    found = only_reduction(sch)
    if found is None:
        return None
    pool, block, ivs, kinds = found
    if kinds != POOL_ITERATION or len(block.reads) != 1 or not writes_at_spatial_vars(block, ivs):
        return None
    root = sch.get_sblock("root", "main")
    blocks = sch.get_child_blocks(root)
    loops = sch.get_loops(pool)
    if len(loops) != 6:
        return None
    for producer in [b for b in blocks if not sch.get(b).same_as(block) and sch.get(b).name_hint.startswith("pad")]:
        sch.compute_inline(producer)  # the padding in the load
    n, c, y, x, ky, kx = loops
    sch.reorder(n, c, y, ky, kx, x)
    rows = sch.fuse(n, c, y)
    sch.parallel(rows)
    accumulate = sch.cache_write(pool, 0, "local")
    sch.reverse_compute_at(accumulate, rows)
    sch.vectorize(x)
    init = sch.decompose_reduction(pool, ky)
    sch.vectorize(sch.get_loops(init)[-1])
    names = {sch.get(b).name_hint for b in (pool, accumulate, init)}
    for consumer in [b for b in sch.get_child_blocks(root) if sch.get(b).name_hint not in names]:
        try:
            sch.reverse_compute_inline(consumer)
        except Exception:  # noqa: BLE001 - not elementwise: computed per row instead
            sch.reverse_compute_at(consumer, rows)
    sch.vectorize(sch.get_loops(accumulate)[-1])
    return sch
