"""Reading YAML files (board descriptions, quantization configs) with one-line errors, within bounds.

YAML aliases let a 1.3 KB file describe a structure of billions of nodes (the "billion laughs" alias bomb):
PyYAML builds it as a small graph of shared objects, and whoever walks it later (pydantic, ``json.dumps``, TVM's
target parser) expands it — compile climbed to 7 GB, ``targets show`` hung. So a file is read only up to
:data:`MAX_BYTES`, and its node graph is measured as it would be expanded (shared nodes counted every time they
are used) before any Python object is built from it; more than :data:`MAX_NODES` is refused.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError, first_line

__all__ = ["read_yaml", "MAX_BYTES", "MAX_NODES"]

MAX_BYTES = 1 << 20  # board files and quantization configs are a few KB
MAX_NODES = 100_000


def read_yaml(path, what: str):
    """Parse ``path``; ConfigError naming ``what``, the file and the line for bad YAML, an unreadable or oversized
    file, or aliases that expand past :data:`MAX_NODES` nodes."""
    import yaml

    path = Path(path)
    try:
        if not path.is_file():  # a device (/dev/zero) or a FIFO would be read without end
            raise ConfigError(f"cannot read {what} {path}: not a regular file")
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise ConfigError(f"{what} {path} is larger than {MAX_BYTES >> 10} KiB")
        loader = yaml.SafeLoader(raw.decode("utf-8"))
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            size = _expanded_size(node)
            if size > MAX_NODES:
                raise ConfigError(f"{what} {path} expands to more than {MAX_NODES} YAML nodes through its aliases "
                                  "(&anchor / *alias); write the values out")
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or first_line(err)
        raise ConfigError(f"{what} {path} is not valid YAML{where}: {problem}") from err
    except RecursionError as err:
        raise ConfigError(f"{what} {path} is nested too deeply") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {what} {path}: {getattr(err, 'strerror', None) or err}") from err


def _expanded_size(root) -> int:
    """Nodes of the document once every alias is replaced by what it names (memoized per node, so measuring a
    bomb is as cheap as the file; a node that contains itself counts as too large)."""
    import yaml

    sizes: dict = {}

    def size(node) -> int:
        key = id(node)
        if key in sizes:
            if sizes[key] is None:  # a recursive alias: infinite once expanded
                return MAX_NODES + 1
            return sizes[key]
        sizes[key] = None
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child)
                if total > MAX_NODES:
                    break
        elif isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                total += size(key_node) + size(value_node)
                if total > MAX_NODES:
                    break
        sizes[key] = total
        return total

    return size(root)
