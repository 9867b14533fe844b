"""``bit_width: mixed``: INT4 or INT8 per layer, by measured sensitivity, to meet the user's target.

1. Baseline: every layer INT8, scored on the calibration set (top-1 against its labels, or against the float
   model's own predictions when it has none).
2. Sensitivity of a layer: that layer alone INT4, the rest INT8: the accuracy drop and the output's relative
   error against the float model (the tie-breaker: on easy data many layers drop nothing).
3. Layers go INT4 in order of least sensitivity per byte saved. With ``max_accuracy_drop`` each addition is
   checked on the calibration set and undone if accuracy falls more than that below the float model; with
   ``target_size_ratio`` the walk stops once the weights are that small. A target that cannot be met is
   reported as such (the accuracy limit is never traded for size).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

__all__ = ["MixedChoice", "choose_mixed"]


@dataclass
class MixedChoice:
    """The INT4 layers chosen, the score of the result and what happened to the target."""

    int4: set
    score: float
    float_score: float
    size_ratio: float
    notes: list = field(default_factory=list)
    evaluations: int = 0


def choose_mixed(layers: list, target, score: Callable, size_ratio: Callable, float_score: float) -> MixedChoice:
    """Pick INT4 layers.

    Parameters
    ----------
    layers : quantizable, non-excluded ``Layer`` objects (their ``sensitivity`` is filled in here)
    target : ``MixedTarget``
    score : ``score(int4: set of node names) -> (accuracy, relative output error)`` on the calibration set
    size_ratio : ``size_ratio(int4) -> quantized / float weight bytes``
    float_score : the float model's accuracy on the same data
    """
    base_score, base_err = score(set())
    evaluations = 1
    saved = {}
    for layer in layers:
        accuracy, error = score({layer.node})
        evaluations += 1
        layer.sensitivity = {"accuracy_drop": round(base_score - accuracy, 6), "output_error": round(error, 6),
                             "output_error_int8": round(base_err, 6)}
        saved[layer.node] = max(size_ratio(set()) - size_ratio({layer.node}), 1e-12)
    order = sorted(layers, key=lambda l: (max(l.sensitivity["accuracy_drop"], 0) / saved[l.node],
                                          l.sensitivity["output_error"] / saved[l.node], l.node))
    limit, size_goal = target.accuracy_limit, target.target_size_ratio
    chosen, current = set(), base_score
    for layer in order:
        if size_goal is not None and size_ratio(chosen) <= size_goal:
            break
        trial = chosen | {layer.node}
        if limit is not None:
            accuracy, _ = score(trial)
            evaluations += 1
            if float_score - accuracy > limit + 1e-12:
                continue
            current = accuracy
        chosen = trial
    if limit is None:
        current, _ = score(chosen)
        evaluations += 1
    notes = []
    ratio = size_ratio(chosen)
    if size_goal is not None and ratio > size_goal:
        why = f" within an accuracy drop of {limit}" if limit is not None else " even with every layer INT4"
        notes.append(f"size target {size_goal:.3f} not reached: weights at {ratio:.3f} of float{why}")
    if float_score - base_score > (limit if limit is not None else 1.0):
        notes.append(f"all-INT8 already drops accuracy by {float_score - base_score:.4f} on the calibration set")
    return MixedChoice(chosen, current, float_score, ratio, notes, evaluations)
