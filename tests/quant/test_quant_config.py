"""The quantization YAML (issue 6): the seed's form loads as written; bad configs fail with one line naming the key."""

from pathlib import Path

import pytest

from tvmedge.errors import ConfigError
from tvmedge.quant import DynamicQuantConfig, StaticQuantConfig, WeightOnlyConfig, load_config

SEED = """\
quantization:
  type: dynamic          # dynamic | static
  bit_width: 8           # 8 | 4 | mixed
  calibration_dataset: ./data/calib_set
  exclude_layers: [embeddings, final_fc]
"""


def _write(tmp_path, text, name="quant.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_seed_yaml_loads_as_written(tmp_path):
    # The exact text; the dataset need not exist to load the config (it is checked when used).
    config = load_config(_write(tmp_path, SEED))
    assert isinstance(config, DynamicQuantConfig)
    assert config.bit_width == 8
    assert config.exclude_layers == ("embeddings", "final_fc")
    assert config.calibration_dataset == tmp_path / "data" / "calib_set"  # relative to the YAML's folder


def test_each_type_maps_to_its_class_with_typed_fields(tmp_path):
    static = load_config(_write(tmp_path, "quantization:\n  type: static\n  bit_width: mixed\n"
                                          "  calibration_method: kl\n  mixed: {target_size_ratio: 0.2}\n"))
    assert isinstance(static, StaticQuantConfig) and static.calibration_method == "kl"
    assert static.bit_width == "mixed" and static.mixed_target.target_size_ratio == 0.2
    assert static.mixed_target.accuracy_limit is None  # a size target alone sets no accuracy limit
    weights = load_config(_write(tmp_path, "quantization:\n  type: weight_only\n  bit_width: '4'\n"))
    assert isinstance(weights, WeightOnlyConfig) and weights.bit_width == 4
    assert weights.describe()["type"] == "weight_only"


def test_the_example_configs_load():
    examples = Path(__file__).resolve().parents[2] / "examples" / "digits"
    for name in ("quant.yaml", "quant_mixed.yaml"):
        config = load_config(examples / name)
        assert config.calibration_dataset.is_file()


BAD = [
    ("quantization:\n  type: dynamic\n  bit_widht: 8\n",
     "quant.yaml: quantization.bit_widht: unknown key for type dynamic; known keys: bit_width, calibration_dataset, "
     "exclude_layers, group_size, max_samples, mixed, scale_dtype, symmetric, type, weight_scale"),
    ("quantization:\n  type: dynamic\n  bit_width: 16\n",
     "quant.yaml: quantization.bit_width: 16 is not valid; choose 8, 4 or mixed"),
    ("quantization:\n  type: int8\n",
     "quant.yaml: quantization.type: 'int8' is not valid; choose dynamic, static or weight_only"),
    ("quantization:\n  bit_width: 8\n",
     "quant.yaml: quantization.type: missing; choose dynamic, static or weight_only"),
    ("quantization:\n  type: dynamic\n  calibration_method: kl\n",
     "quant.yaml: quantization.calibration_method: unknown key for type dynamic (it applies to type static)"),
    ("quantization:\n  type: static\n  calibration_method: entropy\n",
     "quant.yaml: quantization.calibration_method: 'entropy' is not valid; choose minmax, percentile, mse or kl"),
    ("quantization:\n  type: static\n  bit_width: mixed\n  mixed: {target_size: 0.2}\n",
     "quant.yaml: quantization.mixed.target_size: unknown key; known keys: max_accuracy_drop, target_size_ratio"),
    ("quantization:\n  type: static\n  bit_width: 8\n  mixed: {target_size_ratio: 0.2}\n",
     "quant.yaml: quantization: mixed: is only used with bit_width: mixed"),
    ("quantization:\n  type: static\n  max_samples: 0\n",
     "quant.yaml: quantization.max_samples: 0: input should be greater than 0"),
    ("quantization:\n  type: static\n  exclude_layers: 3\n",
     "quant.yaml: quantization.exclude_layers: must be a list of layer names or glob patterns"),
    ("quantisation:\n  type: static\n", "quant.yaml: expected a top-level 'quantization:' block"),
    ("quantization:\n  type: static\nextra: 1\n",
     "quant.yaml: unknown top-level key 'extra'; only 'quantization:' is read"),
    ("quantization: [type, static]\n", "quant.yaml: quantization: must be a mapping of options"),
    ("quantization:\n  type: static\n   bit_width: 8\n", "quantization config quant.yaml is not valid YAML (line 3): "),
]


@pytest.mark.parametrize("text, message", BAD, ids=[m.split(": ")[1] for _, m in BAD])
def test_bad_configs_fail_with_one_line_naming_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text))
    shown = str(err.value)
    assert "\n" not in shown
    assert shown.replace(str(tmp_path / "quant.yaml"), "quant.yaml").startswith(message)


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"quantization config .*nope.yaml does not exist"):
        load_config(tmp_path / "nope.yaml")
