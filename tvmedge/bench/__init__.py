"""Measuring and judging a machine or an emulated board: the 12-metric evaluation matrix (``tvmedge bench``,
:mod:`.matrix`) and the pass/fail certification of an artifact (``tvmedge certify``, :mod:`.certify`). The
board-side measurements are the runtime's (:mod:`tvmedge.runtime.certify`)."""
