"""INT4 storage: two values per byte, ONNX's nibble order (the quantizer writes it, the importer unpacks it)."""

import numpy as np
import pytest
from onnx import TensorProto, numpy_helper

from tvmedge.frontend.int4 import fits_int4, int4_tensor, pack_int4, unpack_int4


def test_int4_packs_two_per_byte_low_nibble_first_and_round_trips():
    values = np.array([[-8, 7, 0], [1, -1, 3]], np.int8)
    packed = pack_int4(values)
    assert packed.tolist() == [0x78, 0x10, 0x3F]  # (-8,7) (0,1) (-1,3): low nibble holds the first value
    assert unpack_int4(packed, values.shape).tolist() == values.tolist()
    assert fits_int4(values) and not fits_int4(np.array([8], np.int8))
    with pytest.raises(ValueError):
        pack_int4(np.array([9], np.int8))


def test_int4_onnx_initializer_matches_onnx_reading_of_it():
    values = np.random.default_rng(2).integers(-8, 8, (5, 7)).astype(np.int8)
    tensor = int4_tensor(values, "w")
    assert tensor.data_type == TensorProto.INT4 and len(tensor.raw_data) == 18  # ceil(35 / 2)
    assert numpy_helper.to_array(tensor).astype(np.int8).tolist() == values.tolist()
