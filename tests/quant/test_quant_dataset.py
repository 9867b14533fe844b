"""Calibration data (issue 6): a folder of .npy/.npz, a list file (RKNN's dataset.txt), or one file."""

import numpy as np
import pytest

from tvmedge.errors import ConfigError
from tvmedge.quant.dataset import load_dataset
from tvmedge.runtime.manifest import TensorSpec

KEY = "quantization.calibration_dataset"
ONE = [TensorSpec("input", (1, 1, 8, 8), "float32")]


def test_folder_of_npy_and_npz_files_in_name_order(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.random((1, 1, 8, 8)))           # one sample with its batch dim
    np.save(tmp_path / "b.npy", rng.random((1, 8, 8)))              # one sample without it
    np.savez(tmp_path / "c.npz", input=rng.random((3, 1, 8, 8)))    # a stack of three
    (tmp_path / "notes.txt").write_text("ignored")
    data = load_dataset(tmp_path, ONE, key=KEY)
    assert len(data) == 5 and data.labels is None
    assert all(s["input"].shape == (1, 1, 8, 8) and s["input"].dtype == np.float32 for s in data)


def test_list_file_relative_to_itself_with_labels_and_a_limit(tmp_path):
    (tmp_path / "d").mkdir()
    for i in range(3):
        np.savez(tmp_path / "d" / f"{i}.npz", input=np.full((2, 1, 8, 8), i, np.float32), labels=[i, i])
    (tmp_path / "dataset.txt").write_text("# calibration images\nd/0.npz\n\nd/1.npz\nd/2.npz\n")
    data = load_dataset(tmp_path / "dataset.txt", ONE, key=KEY, limit=3)
    assert len(data) == 3 and list(data.labels) == [0, 0, 1]
    assert data.samples[2]["input"][0, 0, 0, 0] == 1


def test_the_example_splits_are_real_digits_with_labels():
    from pathlib import Path

    digits = Path(__file__).resolve().parents[2] / "examples" / "digits"
    calib = load_dataset(digits / "calib.npz", ONE, key=KEY)
    test = load_dataset(digits / "test.npz", ONE, key="--evaluate")
    assert (len(calib), len(test)) == (256, 540)
    assert set(np.unique(test.labels)) == set(range(10))
    # held out: no test image is also a calibration image
    seen = {s["input"].tobytes() for s in calib}
    assert not any(s["input"].tobytes() in seen for s in test)


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "quantization.calibration_dataset: {p}/missing does not exist (expected a folder of "
                              ".npy/.npz files, a text file listing them, or one .npy/.npz file)"),
    (lambda p: p, "quantization.calibration_dataset: folder {p} has no .npy or .npz files"),
    (lambda p: (p / "list.txt").write_text("x.npy\n") and p / "list.txt",
     "quantization.calibration_dataset: {p}/list.txt line 1: {p}/x.npy does not exist"),
    (lambda p: np.save(p / "bad.npy", np.zeros((2, 8, 8))) or p / "bad.npy",
     "quantization.calibration_dataset: {p}/bad.npy: input 'input' expects shape (1, 1, 8, 8), got an array of shape (2, 8, 8)"),
    (lambda p: np.savez(p / "w.npz", image=np.zeros((1, 1, 8, 8)), other=np.zeros(2)) or p / "w.npz",
     "quantization.calibration_dataset: {p}/w.npz has no array for input 'input' (it holds: image, other)"),
])
def test_bad_datasets_name_the_key_and_the_file(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_dataset(path, ONE, key=KEY)
    assert str(err.value) == message.format(p=tmp_path)


# --- issue 19, finding 7: devices, FIFOs and files that are not data --------------------------------------------


def test_a_device_is_refused_not_read_without_end():
    # /dev/zero was read as a list file until memory ran out
    with pytest.raises(ConfigError, match="/dev/zero is not a regular file"):
        load_dataset("/dev/zero", ONE, key=KEY)


def test_a_fifo_is_refused_not_waited_on(tmp_path):
    import os
    import threading

    fifo = tmp_path / "calib.npy"
    os.mkfifo(fifo)
    listed = tmp_path / "list.txt"
    listed.write_text("calib.npy\n")
    result = {}

    def attempt(path):
        try:
            load_dataset(path, ONE, key=KEY)
        except ConfigError as err:
            result[path] = str(err)

    for path in (fifo, listed):
        thread = threading.Thread(target=attempt, args=(path,), daemon=True)
        thread.start()
        thread.join(5)
        assert not thread.is_alive(), f"loading {path} hangs on the FIFO"
    assert result[fifo].endswith("calib.npy is not a regular file (expected a .npy, .npz or list file)")
    assert "list.txt line 1: " in result[listed] and "is not a regular file" in result[listed]


def test_a_file_that_is_not_a_list_is_not_echoed(tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secrethash:19000:0:99999:7:::\n")
    with pytest.raises(ConfigError) as err:
        load_dataset(secret, ONE, key=KEY)
    assert "secrethash" not in str(err.value) and "line 1 does not name a .npy or .npz file" in str(err.value)
    binary = tmp_path / "blob"
    binary.write_bytes(b"\xff\xfe\x00" * 10)
    with pytest.raises(ConfigError, match="is neither a .npy/.npz file nor a text file listing them"):
        load_dataset(binary, ONE, key=KEY)
