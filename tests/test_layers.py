"""The floor plan (issue 12): tvmedge's subpackages form layers, and every import points down.

Every import statement of every module counts, lazy ones inside functions included (they are what make a
cycle at run time). ``api`` and ``cli`` are the top (they may import anything); each other unit may import only
the units listed before it in ``LAYERS`` — read top to bottom, the list is the pipeline: the runtime and the
boards first, then import, quantization, tuning, partitioning, the compile pipeline, the native runtime, the
emulated boards, deployment, and what runs artifacts (bench, certify, serve).
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "tvmedge"

LAYERS = [
    "errors", "versions", "yamlfile", "cache",  # foundations
    "runtime",  # the board side: the artifact contract, the loader (imports only the foundations below it)
    "devices",  # boards: Board, DeviceGraph, CompileTarget, declared metrics
    "frontend", "quant", "tune", "partition",  # import, quantize, schedule, place
    "compiler",  # the compile pipeline: stages, lowering, linking, the artifact
    "native", "emulator", "deploy",  # the runtime for boards without Python, emulated boards, shipping
    "thermal", "bench", "serve", "peer",  # running artifacts: governor, measurements and certification, REST
    "analysis",  # looking inside runs: per-kernel profile, per-layer comparison
]
TOP = ("api", "cli", "__main__")


def _unit(module: str):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "tvmedge" else None


def import_edges() -> set:
    """(importing unit, imported unit, importing module) for every import between two units of tvmedge."""
    edges = set()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        source = _unit(module)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                prefix = ".".join(base + ([node.module] if node.module else []))
                names = [prefix] if node.module else [f"{prefix}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                target = _unit(name)
                if source and target and source != target and target != "__version__":
                    edges.add((source, target, module))
    return edges


def test_every_unit_has_a_layer():
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").is_file())}
    assert units - set(LAYERS) - set(TOP) == set(), "a new top-level module or package: give it a place in LAYERS"


def test_no_import_cycles_between_subpackages():
    graph = nx.DiGraph((a, b) for a, b, _ in import_edges() if a not in TOP)
    assert list(nx.simple_cycles(graph)) == []


def test_imports_only_point_down():
    rank = {unit: index for index, unit in enumerate(LAYERS)}
    upward = sorted(f"{module} imports tvmedge.{target}" for source, target, module in import_edges()
                    if source not in TOP and rank.get(target, len(LAYERS)) >= rank[source])
    assert upward == []
