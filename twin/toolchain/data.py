"""Data sets for the twin: scikit-learn's bundled 8x8 digits and MNIST from IDX files.

Every loader returns a :class:`Dataset` holding float32 images of shape
``(N, 1, H, W)`` scaled to ``[0, 1]`` and int64 labels.  Every failure to load
raises :class:`DatasetError` with a message that names the offending path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from twin.toolchain.idx import DatasetError, read_idx

__all__ = [
    "DatasetError",
    "Dataset",
    "DATASET_NAMES",
    "MNIST_FILES",
    "load_digits",
    "read_idx",
    "load_mnist",
    "load_dataset",
]

DATASET_NAMES: tuple[str, ...] = ("digits", "mnist")
"""Names accepted by :func:`load_dataset`."""

MNIST_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
"""The four standard MNIST IDX file names (each may also carry a ``.gz`` suffix)."""

@dataclass(frozen=True, eq=False)  # eq=False: element-wise tensor == has no single truth value
class Dataset:
    """An image-classification data set split into train and test parts."""

    name: str
    x_train: torch.Tensor  # float32, (N, 1, H, W), values in [0, 1]
    y_train: torch.Tensor  # int64, (N,)
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def image_size(self) -> int:
        """Image height H in pixels."""
        return int(self.x_train.shape[-2])

    def fingerprint(self) -> str:
        """SHA-256 hex digest of the name and the bytes (with shape/dtype) of all four tensors."""
        h = hashlib.sha256(self.name.encode("utf-8"))
        for t in (self.x_train, self.y_train, self.x_test, self.y_test):
            arr = t.detach().cpu().contiguous().numpy()
            h.update(f"|{arr.dtype.str}{tuple(arr.shape)}|".encode("ascii"))
            h.update(arr.tobytes())
        return h.hexdigest()


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits (1,797 images, 0..16 scaled by /16), stratified seeded split."""
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"digits: test_fraction must be in (0, 1), got {test_fraction!r}")
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = _sk_load_digits()
    x = (np.asarray(bunch.images, dtype=np.float64) / 16.0).astype(np.float32)[:, None, :, :]
    y = np.asarray(bunch.target, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    return Dataset(
        name="digits",
        x_train=torch.from_numpy(np.ascontiguousarray(x_tr)),
        y_train=torch.from_numpy(np.ascontiguousarray(y_tr)),
        x_test=torch.from_numpy(np.ascontiguousarray(x_te)),
        y_test=torch.from_numpy(np.ascontiguousarray(y_te)),
    )


def _find_idx(directory: Path, base: str) -> Path:
    """Return ``directory/base`` or ``directory/base.gz``, whichever exists (raw preferred)."""
    for candidate in (directory / base, directory / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    raise DatasetError(
        f"{directory / base}: MNIST file missing (also tried {directory / base}.gz); "
        f"expected in {directory}: {', '.join(MNIST_FILES)} (each optionally .gz)"
    )


def _load_split(directory: Path, images_base: str, labels_base: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Load and validate one image/label pair of IDX files."""
    img_path, lbl_path = _find_idx(directory, images_base), _find_idx(directory, labels_base)
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim != 3:
        raise DatasetError(f"{img_path}: expected 3-D images (N, H, W), header says shape {images.shape}")
    if labels.ndim != 1:
        raise DatasetError(f"{lbl_path}: expected 1-D labels (N,), header says shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"{img_path} has {images.shape[0]} images but {lbl_path} has {labels.shape[0]} labels"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(
            f"{lbl_path}: labels must be in 0..9, found range {labels.min()}..{labels.max()}"
        )
    x = (images.astype(np.float32) / np.float32(255.0))[:, None, :, :]
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(labels.astype(np.int64))


def load_mnist(directory: Path) -> Dataset:
    """Load MNIST from the four standard IDX files (raw or .gz) in ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(
            f"{directory}: MNIST directory does not exist or is not a directory; "
            f"expected it to contain {', '.join(MNIST_FILES)} (each optionally .gz)"
        )
    x_train, y_train = _load_split(directory, MNIST_FILES[0], MNIST_FILES[1])
    x_test, y_test = _load_split(directory, MNIST_FILES[2], MNIST_FILES[3])
    if x_train.shape[-2:] != x_test.shape[-2:]:
        raise DatasetError(
            f"{directory}: train images are {tuple(x_train.shape[-2:])} but test images are "
            f"{tuple(x_test.shape[-2:])}"
        )
    return Dataset("mnist", x_train, y_train, x_test, y_test)


def load_dataset(name: str, path: str | Path | None = None, seed: int = 0) -> Dataset:
    """Load a data set by name: ``"digits"`` (bundled) or ``"mnist"`` (needs ``path``)."""
    if name == "digits":
        return load_digits(seed=seed)
    if name == "mnist":
        if path is None:
            raise DatasetError(
                "mnist: no path given; point it at a directory containing the four IDX files "
                f"{', '.join(MNIST_FILES)} (each optionally .gz)"
            )
        return load_mnist(Path(path))
    raise DatasetError(f"unknown dataset name {name!r}; valid names: {', '.join(DATASET_NAMES)}")
