"""Tests for twin.toolchain.data: digits split, IDX reading, MNIST loading and error messages."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from twin.toolchain.data import (
    MNIST_FILES,
    Dataset,
    DatasetError,
    load_dataset,
    load_digits,
    load_mnist,
    read_idx,
)

_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
          np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode ``arr`` in IDX format (big-endian)."""
    code = _CODES[arr.dtype]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray, compress: bool = False) -> Path:
    data = idx_bytes(arr)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def make_mnist(directory: Path, compress: bool = False, n_train: int = 5, n_test: int = 3,
               seed: int = 0) -> dict[str, np.ndarray]:
    """Write the four MNIST files with random contents; return the arrays by base name."""
    rng = np.random.default_rng(seed)
    arrays = {
        MNIST_FILES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        MNIST_FILES[1]: rng.integers(0, 10, n_train, dtype=np.uint8),
        MNIST_FILES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        MNIST_FILES[3]: rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for base, arr in arrays.items():
        write_idx(directory / (base + (".gz" if compress else "")), arr, compress)
    return arrays


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_digits()


# ---------------------------------------------------------------- digits

def test_digits_shapes_dtypes_and_ranges(digits: Dataset) -> None:
    assert digits.name == "digits"
    assert digits.x_train.shape == (1437, 1, 8, 8)
    assert digits.x_test.shape == (360, 1, 8, 8)
    assert digits.y_train.shape == (1437,) and digits.y_test.shape == (360,)
    assert digits.x_train.dtype == torch.float32 and digits.y_train.dtype == torch.int64
    assert digits.image_size == 8
    for x in (digits.x_train, digits.x_test):
        assert x.min().item() == 0.0 and x.max().item() == 1.0
    for y in (digits.y_train, digits.y_test):
        assert set(y.unique().tolist()) == set(range(10))


def test_digits_split_is_stratified(digits: Dataset) -> None:
    counts = torch.bincount(digits.y_test, minlength=10)
    assert counts.min().item() >= 35 and counts.max().item() <= 37


def test_digits_deterministic_same_seed(digits: Dataset) -> None:
    again = load_digits(seed=0)
    for a, b in [(digits.x_train, again.x_train), (digits.y_train, again.y_train),
                 (digits.x_test, again.x_test), (digits.y_test, again.y_test)]:
        assert torch.equal(a, b)
    assert digits.fingerprint() == again.fingerprint()
    assert len(digits.fingerprint()) == 64
    assert load_dataset("digits").fingerprint() == digits.fingerprint()


def test_digits_different_seed_different_split(digits: Dataset) -> None:
    other = load_digits(seed=1)
    assert other.x_test.shape == digits.x_test.shape
    assert not torch.equal(other.x_test, digits.x_test)
    assert other.fingerprint() != digits.fingerprint()


def test_digits_bad_test_fraction() -> None:
    with pytest.raises(DatasetError, match="test_fraction"):
        load_digits(test_fraction=1.5)


# ---------------------------------------------------------------- read_idx

@pytest.mark.parametrize("dtype", list(_CODES))
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_roundtrip_all_dtypes(tmp_path: Path, dtype: np.dtype, compress: bool) -> None:
    arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype) if dtype.kind != "u" \
        else np.arange(24, dtype=dtype).reshape(2, 3, 4)
    out = read_idx(write_idx(tmp_path / "a.idx", arr, compress))
    assert out.dtype == dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


def test_read_idx_gzip_detected_by_magic_not_extension(tmp_path: Path) -> None:
    arr = np.arange(6, dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "plain.bin", arr, True)), arr)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "raw.gz", arr, False)), arr)


# ---------------------------------------------------------------- mnist

@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_roundtrip(tmp_path: Path, compress: bool) -> None:
    arrays = make_mnist(tmp_path / "mnist", compress=compress)
    ds = load_mnist(tmp_path / "mnist")
    assert ds.name == "mnist" and ds.image_size == 28
    assert ds.x_train.shape == (5, 1, 28, 28) and ds.x_test.shape == (3, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    expected_x = torch.from_numpy(arrays[MNIST_FILES[0]].astype(np.float32) / 255.0)[:, None]
    assert torch.equal(ds.x_train, expected_x)
    assert torch.equal(ds.y_train, torch.from_numpy(arrays[MNIST_FILES[1]].astype(np.int64)))
    assert torch.equal(ds.y_test, torch.from_numpy(arrays[MNIST_FILES[3]].astype(np.int64)))
    assert 0.0 <= ds.x_test.min().item() and ds.x_test.max().item() <= 1.0
    via_name = load_dataset("mnist", str(tmp_path / "mnist"))
    assert via_name.fingerprint() == ds.fingerprint()


def test_load_mnist_mixed_gz_and_raw(tmp_path: Path) -> None:
    arrays = make_mnist(tmp_path, compress=True)
    (tmp_path / f"{MNIST_FILES[1]}.gz").unlink()
    write_idx(tmp_path / MNIST_FILES[1], arrays[MNIST_FILES[1]])
    ds = load_mnist(tmp_path)
    assert torch.equal(ds.y_train, torch.from_numpy(arrays[MNIST_FILES[1]].astype(np.int64)))


def test_load_mnist_non_square_header(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    write_idx(tmp_path / MNIST_FILES[0], np.zeros((5, 10, 12), dtype=np.uint8))
    write_idx(tmp_path / MNIST_FILES[2], np.full((3, 10, 12), 255, dtype=np.uint8))
    ds = load_mnist(tmp_path)
    assert ds.x_train.shape == (5, 1, 10, 12) and ds.image_size == 10
    assert ds.x_test.max().item() == 1.0


# ---------------------------------------------------------------- errors

def test_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DatasetError) as exc:
        load_mnist(missing)
    assert str(missing) in str(exc.value) and MNIST_FILES[0] in str(exc.value)


def test_missing_one_file(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    (tmp_path / MNIST_FILES[3]).unlink()
    with pytest.raises(DatasetError) as exc:
        load_mnist(tmp_path)
    msg = str(exc.value)
    assert str(tmp_path / MNIST_FILES[3]) in msg
    assert all(name in msg for name in MNIST_FILES)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist") as exc:
        read_idx(tmp_path / "absent")
    assert str(tmp_path / "absent") in str(exc.value)


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_file(tmp_path: Path, compress: bool) -> None:
    make_mnist(tmp_path)
    bad = tmp_path / MNIST_FILES[0]
    data = bad.read_bytes()[:-7]
    bad.write_bytes(gzip.compress(data) if compress else data)
    if compress:
        bad = bad.rename(bad.with_name(bad.name + ".gz"))
    with pytest.raises(DatasetError, match="truncated") as exc:
        load_mnist(tmp_path)
    assert str(bad) in str(exc.value)


def test_trailing_bytes(tmp_path: Path) -> None:
    p = tmp_path / "x.idx"
    p.write_bytes(idx_bytes(np.zeros(4, dtype=np.uint8)) + b"\x00")
    with pytest.raises(DatasetError, match="trailing") as exc:
        read_idx(p)
    assert str(p) in str(exc.value)


def test_truncated_header(tmp_path: Path) -> None:
    p = tmp_path / "h.idx"
    p.write_bytes(bytes([0, 0, 0x08, 3]) + b"\x00\x00\x00\x05")
    with pytest.raises(DatasetError, match="header") as exc:
        read_idx(p)
    assert str(p) in str(exc.value)


def test_bad_magic(tmp_path: Path) -> None:
    p = tmp_path / "bad.idx"
    p.write_bytes(b"\x12\x34\x08\x01\x00\x00\x00\x01\x00")
    with pytest.raises(DatasetError, match="magic") as exc:
        read_idx(p)
    assert str(p) in str(exc.value)


def test_bad_magic_named_gz_mentions_not_gzip(tmp_path: Path) -> None:
    p = tmp_path / "bad.gz"
    p.write_bytes(b"not an idx nor a gzip file")
    with pytest.raises(DatasetError, match="not gzip") as exc:
        read_idx(p)
    assert str(p) in str(exc.value)


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty"
    p.write_bytes(b"")
    with pytest.raises(DatasetError, match="magic") as exc:
        read_idx(p)
    assert str(p) in str(exc.value)


def test_unknown_dtype_code(tmp_path: Path) -> None:
    p = tmp_path / "code.idx"
    p.write_bytes(bytes([0, 0, 0x0A, 1]) + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(DatasetError, match="0x0A") as exc:
        read_idx(p)
    assert str(p) in str(exc.value)


def test_corrupt_gzip(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    (tmp_path / MNIST_FILES[2]).unlink()
    bad = tmp_path / f"{MNIST_FILES[2]}.gz"
    bad.write_bytes(b"\x1f\x8b" + b"this is definitely not deflate data")
    with pytest.raises(DatasetError, match="gzip") as exc:
        load_mnist(tmp_path)
    assert str(bad) in str(exc.value)


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    p = tmp_path / "cut.gz"
    p.write_bytes(gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)))[:-10])
    with pytest.raises(DatasetError, match="gzip") as exc:
        read_idx(p)
    assert str(p) in str(exc.value)


def test_count_mismatch(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    write_idx(tmp_path / MNIST_FILES[1], np.zeros(4, dtype=np.uint8))
    with pytest.raises(DatasetError, match="5 images.*4 labels") as exc:
        load_mnist(tmp_path)
    assert str(tmp_path / MNIST_FILES[0]) in str(exc.value)
    assert str(tmp_path / MNIST_FILES[1]) in str(exc.value)


def test_label_out_of_range(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    write_idx(tmp_path / MNIST_FILES[3], np.array([0, 10, 2], dtype=np.uint8))
    with pytest.raises(DatasetError, match="0..9") as exc:
        load_mnist(tmp_path)
    assert str(tmp_path / MNIST_FILES[3]) in str(exc.value)


def test_wrong_image_rank(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    write_idx(tmp_path / MNIST_FILES[0], np.zeros((5, 784), dtype=np.uint8))
    with pytest.raises(DatasetError, match="3-D") as exc:
        load_mnist(tmp_path)
    assert str(tmp_path / MNIST_FILES[0]) in str(exc.value)


def test_unknown_dataset_name() -> None:
    with pytest.raises(DatasetError) as exc:
        load_dataset("cifar10")
    msg = str(exc.value)
    assert "cifar10" in msg and "digits" in msg and "mnist" in msg


def test_mnist_without_path() -> None:
    with pytest.raises(DatasetError) as exc:
        load_dataset("mnist")
    msg = str(exc.value)
    assert "mnist" in msg and "directory" in msg and MNIST_FILES[0] in msg


def test_dataset_error_is_value_error() -> None:
    assert issubclass(DatasetError, ValueError)
