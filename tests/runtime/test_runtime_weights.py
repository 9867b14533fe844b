"""Loading an LM artifact's weights file (issue 16): every tensor checked against its content-hash name while it is
read; anything damaged is one ArtifactError line."""

import re
import struct

import numpy as np
import pytest

from tvmedge.compiler.weights import weight_name, write_safetensors
from tvmedge.runtime.weights import Weights, load_weights


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw[:-3], "is not as long as its header says"),
    (lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]), "does not match its sha256 (tampered or corrupt); refusing to load it"),
    (lambda raw: struct.pack("<Q", 1 << 40) + raw[8:], "is not a safetensors file tvmedge wrote"),
])
def test_damaged_weights_are_refused_in_one_line(tmp_path, damage, message):
    from tvmedge.errors import ArtifactError

    a = np.arange(64, dtype=np.float32)
    path = write_safetensors(tmp_path / "w.safetensors", {weight_name(a): a})
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ArtifactError, match=re.escape(message)) as err:
        load_weights(path, make=lambda array: array)
    assert "\n" not in str(err.value)


def test_only_the_named_tensors_are_loaded_and_a_missing_one_is_named(tmp_path):
    from tvmedge.errors import ArtifactError

    a, b = np.arange(64, dtype=np.float32), np.arange(32, dtype=np.int64)
    path = write_safetensors(tmp_path / "w.safetensors", {weight_name(a): a, weight_name(b): b})
    weights = Weights(path, [weight_name(b)])
    assert weights.tensors is None  # loaded on first use, once
    (loaded,) = weights.select([weight_name(b)], "decode", make=lambda array: array)
    np.testing.assert_array_equal(loaded, b)
    assert len(weights) == 1
    other = np.zeros(16, np.float32)
    with pytest.raises(ArtifactError, match=f"lacks weight {weight_name(other)[:17]}... that decode needs"):
        weights.select([weight_name(other)], "decode")
