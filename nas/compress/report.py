"""The report folder of ``nas.compress``: report.json, report.md (a table) and a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["markdown_table", "write_report"]


def markdown_table(report: dict[str, Any]) -> str:
    """One row per stage, with ratios against fp32."""
    stages = report["stages"]
    base = stages["fp32"]
    lines = [
        "| stage | params | vs fp32 | GFLOPs@640 | mAP50 | mAP50-95 | latency ms (ORT) | "
        "vs fp32 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in stages.items():
        lines.append(
            f"| {name} | {row['params']:,} | {row['params'] / base['params']:.2f}x | "
            f"{row['gflops']:.3f} | {row['map50']:.4f} | {row['map50_95']:.4f} | "
            f"{row['latency_ms']:.2f} | {row['latency_ms'] / base['latency_ms']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, row in report["stages"].items():
        ax.scatter(row["latency_ms"], row["map50_95"], s=40)
        ax.annotate(name, (row["latency_ms"], row["map50_95"]), textcoords="offset points",
                    xytext=(5, 4))  # fmt: skip
    ax.set_xlabel(f"onnxruntime latency, ms (batch 1, {report['imgsz']} px, "
                  f"{report['threads']} threads)")  # fmt: skip
    ax.set_ylabel("mAP50-95")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``map_latency.png`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "markdown": out_dir / "report.md",
             "plot": out_dir / "map_latency.png"}  # fmt: skip
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    title = f"# Compression of {report['model'] or report['weights']} on {report['data']}\n\n"
    paths["markdown"].write_text(title + markdown_table(report))
    _plot(report, paths["plot"])
    return paths
