"""Tuning curve: estimated model latency against trials, written as a PNG next to the logs."""

from __future__ import annotations

from pathlib import Path

__all__ = ["plot_tuning_curve"]


def plot_tuning_curve(report, path, *, title: str = "") -> Path:
    """Plot ``report.history`` (trials, estimated latency in us) to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(trials, us / 1e3) for trials, us in report.history if us is not None]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if points:
        xs, ys = zip(*points)
        ax.step(xs, ys, where="post", color="tab:blue")
        ax.scatter(xs, ys, s=8, color="tab:blue")
    else:
        ax.text(0.5, 0.5, "no task has a measured record yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("trials (this run)")
    ax.set_ylabel("estimated model latency (ms)\nsum of best task latency x calls")
    ax.set_title(title or f"tuning curve: {Path(report.database).name}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
