"""Tuning curves, written as a PNG next to the logs.

Left: the model's estimated latency (sum over tasks of best latency x calls) against trials; it exists once
every task has a record. Right: each heavy task's best latency against trials.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["plot_tuning_curve"]


def plot_tuning_curve(report, path, *, title: str = "", top: int = 8) -> Path:
    """Plot ``report.history`` to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    model = [(h["trials"], h["estimated_us"] / 1e3) for h in report.history if h["estimated_us"] is not None]
    if model:
        xs, ys = zip(*model)
        left.step(xs, ys, where="post", color="tab:blue")
        left.scatter(xs, ys, s=8, color="tab:blue")
    left.text(0.02, 0.97, "" if len(model) > 1 else "the estimate exists once every task has a record",
              transform=left.transAxes, va="top", fontsize=8)
    left.set(xlabel="trials (this run)", ylabel="estimated model latency (ms)", title="model")
    heavy = sorted(report.tasks, key=lambda t: -t.share_us)[:top]
    for task in heavy:
        points = [(h["trials"], h["best_us"]) for h in report.history if h["task"] == task.name and h["best_us"]]
        if points:
            xs, ys = zip(*points)
            right.plot(xs, ys, marker="o", markersize=3, label=f"{task.name[:28]} x{task.weight}")
    right.set(xlabel="trials (this run)", ylabel="best latency (us)", yscale="log", title=f"{len(heavy)} heaviest tasks")
    if heavy:
        right.legend(fontsize=6, loc="best")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.suptitle(title or f"tuning: {Path(report.database).name}")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
