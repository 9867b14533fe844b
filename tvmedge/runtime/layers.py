"""``LayerMap``: which ONNX layers each kernel call of an artifact computes, and its FLOPs (``layers.json``).

Written by the compiler (:mod:`tvmedge.compiler.layers`), listed with its sha256 in the manifest's ``files``,
read by the profiler (:mod:`tvmedge.runtime.profile`) to group kernel times back to ONNX tensors. Stdlib only.
An artifact built before this file existed has none: its profile then shows kernel names alone.

    {"format": 1, "stages": [{"index": 0, "note": null,
      "calls": [{"kernel": "fused_conv2d_add_relu", "layers": ["b1", "r1"], "flops": 1769472.0}, ...]}]}

``calls`` lists the kernel calls of the stage's ``main`` in execution order (a kernel called twice appears
twice); it is null, with ``note`` saying why, when the compiler could not tie kernels to layers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import ArtifactError

__all__ = ["LayerMap", "KernelCall", "StageLayers", "LAYERS_NAME"]

LAYERS_NAME = "layers.json"
LAYERS_FORMAT = 1


@dataclass(frozen=True)
class KernelCall:
    kernel: str
    layers: tuple = ()  # ONNX tensor names this call computes (empty: unknown)
    flops: Optional[float] = None  # arithmetic operations (integer ones for an integer kernel)
    integer: bool = False  # its reduction is int8 x int8 -> int32 (compare with the int8 peak)

    def to_json(self) -> dict:
        return {"kernel": self.kernel, "layers": list(self.layers), "flops": self.flops, "integer": self.integer}


@dataclass(frozen=True)
class StageLayers:
    index: int
    calls: Optional[tuple] = None  # of KernelCall, in execution order; None when unknown
    note: Optional[str] = None

    def to_json(self) -> dict:
        return {"index": self.index, "note": self.note,
                "calls": None if self.calls is None else [c.to_json() for c in self.calls]}


@dataclass(frozen=True)
class LayerMap:
    stages: tuple  # of StageLayers, in stage order

    def to_json(self) -> str:
        return json.dumps({"format": LAYERS_FORMAT, "stages": [s.to_json() for s in self.stages]}, indent=1) + "\n"

    def write(self, directory) -> Path:
        path = Path(directory) / LAYERS_NAME
        path.write_text(self.to_json())
        return path

    @classmethod
    def read(cls, directory) -> Optional["LayerMap"]:
        """The artifact's map, or None when it has no ``layers.json`` (its hash is checked with the manifest's)."""
        path = Path(directory) / LAYERS_NAME
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            stages = []
            for stage in data["stages"]:
                calls = stage.get("calls")
                if calls is not None:
                    calls = tuple(KernelCall(str(c["kernel"]), tuple(c.get("layers") or ()), c.get("flops"),
                                             bool(c.get("integer", False))) for c in calls)
                stages.append(StageLayers(int(stage["index"]), calls, stage.get("note")))
        except (ValueError, KeyError, TypeError) as err:
            raise ArtifactError(f"{path} is malformed: {err}") from err
        return cls(tuple(stages))

    def stage(self, index: int) -> Optional[StageLayers]:
        return next((s for s in self.stages if s.index == index), None)
