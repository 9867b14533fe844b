"""``QuantConfig``: the typed quantization config, read from YAML with every key checked.

The seed's form is accepted as written (``calibration_dataset`` relative to the YAML file's folder)::

    quantization:
      type: dynamic          # dynamic | static | weight_only
      bit_width: 8           # 8 | 4 | mixed
      calibration_dataset: ./data/calib_set
      exclude_layers: [embeddings, final_fc]
      group_size: 32         # 32 | 64 | 128: INT4 MatMul / Gemm weights group-wise (ONNX Runtime's MatMulNBits)
      symmetric: true        # false: a zero point per group too
      scale_dtype: float32   # float32 | float16

``type`` picks the class (:class:`DynamicQuantConfig`, :class:`StaticQuantConfig`, :class:`WeightOnlyConfig`);
:func:`tvmedge.quant.quantize` dispatches on it. Unknown keys, bad values and keys of another type are
rejected with one line naming the key, e.g. ``quant.yaml: quantization.bit_width: 16 is not valid; choose 8, 4
or mixed``. Whether the dataset exists is checked when it is used (:func:`tvmedge.quant.quantize`), so a config
can be loaded and inspected on another machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError
from ..yamlfile import read_yaml
from .blockwise import GROUP_SIZES

__all__ = [
    "QuantConfig",
    "DynamicQuantConfig",
    "StaticQuantConfig",
    "WeightOnlyConfig",
    "MixedTarget",
    "load_config",
    "parse_config",
]

_DEFAULT_MAX_DROP = 0.01


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MixedTarget(_Strict):
    """What ``bit_width: mixed`` aims for; layers go INT4 in order of least sensitivity per byte saved.

    ``target_size_ratio``: quantized weight bytes / float weight bytes to reach (e.g. 0.17 ~ 1/6).
    ``max_accuracy_drop``: never accept a layer whose INT4 weights lower accuracy on the calibration set by
    more than this (absolute, 0.01 = one percentage point) below the float model. With neither set, the
    accuracy limit defaults to 0.01.
    """

    target_size_ratio: Optional[float] = Field(default=None, gt=0, le=1)
    max_accuracy_drop: Optional[float] = Field(default=None, ge=0, le=1)

    @property
    def accuracy_limit(self) -> Optional[float]:
        if self.max_accuracy_drop is None and self.target_size_ratio is None:
            return _DEFAULT_MAX_DROP
        return self.max_accuracy_drop


class QuantConfig(_Strict):
    """Options every quantization type shares. Weights: per-output-channel symmetric INT8 / INT4."""

    type: str
    bit_width: Union[Literal[8, 4], Literal["mixed"]] = 8
    calibration_dataset: Optional[Path] = None
    exclude_layers: tuple = ()
    weight_scale: Literal["absmax", "mse"] = "mse"  # mse: per-channel clipping that minimises the weight error
    max_samples: int = Field(default=256, gt=0)
    mixed: Optional[MixedTarget] = None
    # Group-wise INT4 (MatMul / Gemm with a constant weight): scales per group_size values along K, written as
    # com.microsoft.MatMulNBits; without group_size INT4 weights are per output channel (QDQ).
    group_size: Optional[int] = None
    symmetric: bool = True
    scale_dtype: Literal["float32", "float16"] = "float32"

    @field_validator("group_size", mode="before")
    @classmethod
    def _group(cls, value):
        if value is None:
            return None
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or value not in GROUP_SIZES:
            raise ValueError(f"{value!r} is not valid; choose 32, 64 or 128")
        return value

    @model_validator(mode="after")
    def _group_options(self):
        if self.group_size is not None and self.bit_width == 8:
            raise ValueError("group_size: group-wise weights are 4-bit; use it with bit_width: 4 or mixed")
        if self.group_size is None and not self.symmetric:
            raise ValueError("symmetric: false needs group_size (per-channel weights are symmetric)")
        if self.group_size is None and self.scale_dtype != "float32":
            raise ValueError("scale_dtype: float16 needs group_size (per-channel scales are float32)")
        return self

    @field_validator("exclude_layers", mode="before")
    @classmethod
    def _names(cls, value):
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            raise ValueError("must be a list of layer names or glob patterns")
        return tuple(value)

    @field_validator("bit_width", mode="before")
    @classmethod
    def _bits(cls, value):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if value not in (8, 4, "mixed") or isinstance(value, bool):
            raise ValueError(f"{value!r} is not valid; choose 8, 4 or mixed")
        return value

    @model_validator(mode="after")
    def _mixed_only_with_mixed(self):
        if self.mixed is not None and self.bit_width != "mixed":
            raise ValueError("mixed: is only used with bit_width: mixed")
        return self

    @property
    def mixed_target(self) -> MixedTarget:
        return self.mixed or MixedTarget()

    @property
    def needs_dataset(self) -> bool:
        """Calibration data is needed for static ranges and for measuring mixed-precision sensitivity."""
        return self.bit_width == "mixed"

    def describe(self) -> dict:
        """The config as plain JSON data (for reports and the manifest)."""
        data = self.model_dump(mode="json", exclude_none=True)
        data["exclude_layers"] = list(self.exclude_layers)
        return data


class DynamicQuantConfig(QuantConfig):
    """Activations quantized at run time (per tensor, uint8, range of each input); weights ahead of time."""

    type: Literal["dynamic"] = "dynamic"


class StaticQuantConfig(QuantConfig):
    """Activation ranges fixed from calibration data (per tensor, uint8, asymmetric).

    ``calibration_method``: ``minmax``; ``percentile`` (clip at ``percentile`` of the values); ``mse`` (the range
    minimising the quantization + clipping error over the histogram); ``kl`` (TensorRT's entropy method).
    """

    type: Literal["static"] = "static"
    calibration_method: Literal["minmax", "percentile", "mse", "kl"] = "mse"
    percentile: float = Field(default=99.99, gt=50, le=100)

    @property
    def needs_dataset(self) -> bool:
        return True


class WeightOnlyConfig(QuantConfig):
    """Weights quantized, activations stay float (smallest change to accuracy; no activation overhead)."""

    type: Literal["weight_only"] = "weight_only"


_CLASSES = {"dynamic": DynamicQuantConfig, "static": StaticQuantConfig, "weight_only": WeightOnlyConfig}


def load_config(path) -> QuantConfig:
    """Read a YAML file holding a ``quantization:`` block -> the matching ``QuantConfig`` subclass."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"quantization config {path} does not exist")
    data = read_yaml(path, "quantization config")
    return parse_config(data, source=path.name, base_dir=path.parent)


def parse_config(data, *, source: str = "config", base_dir=None) -> QuantConfig:
    """A parsed YAML document -> ``QuantConfig``; relative dataset paths are resolved against ``base_dir``."""
    if not isinstance(data, dict) or "quantization" not in data:
        raise ConfigError(f"{source}: expected a top-level 'quantization:' block")
    extra = sorted(set(data) - {"quantization"})
    if extra:
        raise ConfigError(f"{source}: unknown top-level key '{extra[0]}'; only 'quantization:' is read")
    block = data["quantization"]
    if not isinstance(block, dict):
        raise ConfigError(f"{source}: quantization: must be a mapping of options")
    kind = block.get("type")
    if kind not in _CLASSES:
        shown = "missing" if kind is None else f"{kind!r} is not valid"
        raise ConfigError(f"{source}: quantization.type: {shown}; choose dynamic, static or weight_only")
    cls = _CLASSES[kind]
    _reject_unknown(block, cls, source)
    try:
        config = cls(**block)
    except ValidationError as err:
        raise ConfigError(f"{source}: {_describe(err)}") from None
    if config.calibration_dataset is not None and base_dir is not None:
        dataset = Path(base_dir) / config.calibration_dataset  # an absolute path stays as it is
        config = config.model_copy(update={"calibration_dataset": dataset})
    return config


def _reject_unknown(block: dict, cls, source: str) -> None:
    known = set(cls.model_fields)
    for key in block:
        if key in known:
            continue
        owners = [name for name, other in _CLASSES.items() if key in other.model_fields]
        hint = f" (it applies to type {' / '.join(owners)})" if owners else f"; known keys: {', '.join(sorted(known))}"
        raise ConfigError(f"{source}: quantization.{key}: unknown key for type {cls.model_fields['type'].default}{hint}")
    mixed = block.get("mixed")
    if isinstance(mixed, dict):
        for key in mixed:
            if key not in MixedTarget.model_fields:
                raise ConfigError(f"{source}: quantization.mixed.{key}: unknown key; known keys: "
                                  f"{', '.join(sorted(MixedTarget.model_fields))}")


def _describe(err: ValidationError) -> str:
    """The first pydantic error as ``quantization.<key>: <what is wrong>``."""
    first = err.errors()[0]
    loc = ".".join(str(part) for part in first["loc"] if not str(part).startswith(("literal[", "function-")))
    key = f"quantization.{loc}" if loc else "quantization"
    message = first["msg"].removeprefix("Value error, ")
    field, sep, rest = message.partition(": ")
    if not loc and sep and field in ("group_size", "symmetric", "scale_dtype"):  # a check across keys names its key
        key, message = f"quantization.{field}", rest
    if first["type"] == "literal_error":
        message = f"{first.get('input')!r} is not valid; choose {first['ctx']['expected'].replace(chr(39), '')}"
    elif first["type"] in ("greater_than", "greater_than_equal", "less_than_equal", "less_than"):
        message = f"{first.get('input')!r}: {message.lower()}"
    return f"{key}: {message}"
