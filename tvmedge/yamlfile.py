"""Reading YAML files (board descriptions, quantization configs) with one-line errors."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError, first_line

__all__ = ["read_yaml"]


def read_yaml(path, what: str):
    """Parse ``path``; ConfigError naming ``what``, the file and the line for bad YAML or an unreadable file."""
    import yaml

    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or first_line(err)
        raise ConfigError(f"{what} {path} is not valid YAML{where}: {problem}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {what} {path}: {getattr(err, 'strerror', None) or err}") from err
