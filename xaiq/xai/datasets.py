"""Datasets by spec. Every sample has a stable index (0..n-1) and a source key.

Specs accepted by :func:`open_dataset`:

- ``digits``: scikit-learn's bundled digits (1,797 grey 8x8 images, labels 0-9);
- ``skimage`` or ``skimage:NAME[,NAME...]``: scikit-image's bundled sample photos (no labels);
- ``folder:PATH`` or a directory path: class subfolders give labels (sorted names -> 0..C-1),
  and every image below a class folder, at any depth, belongs to that class (as in
  torchvision's ``ImageFolder``; image files beside the class folders are not samples); a flat
  folder has no labels (the model's prediction is the reference class);
- ``file:PATH`` or an image file path: one image, no label;
- ``mnist:ROOT`` / ``cifar10:ROOT`` (``:test`` suffix for the test split): torchvision's
  datasets from a local root, never downloaded.

Images come out as float32 ``[H, W]`` or ``[H, W, 3]`` in [0, 1]; a model's
``preprocess`` turns them into model inputs.

Keys are text every store accepts: a file name whose bytes are not UTF-8 (legal on Linux) is
written with ``\\xNN`` for each such byte and ``\\\\`` for a backslash (:func:`escape_name`;
:func:`unescape_name` gives the name back, ``os.fsencode`` its bytes). Every sample also has a
content :meth:`Dataset.fingerprint` (sha256), which a job pins when it is planned.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xaiq.xai.errors import DatasetError, SampleError
from xaiq.xai.images import IMAGE_SUFFIXES, read_image
from xaiq.xai.registry import Registry


@dataclass(frozen=True)
class Sample:
    """One image: stable ``index``, source ``key``, ``image`` in [0, 1], ``label`` or None."""

    index: int
    key: str
    image: np.ndarray
    label: int | None


class Dataset:
    """Base class: subclasses set ``spec`` and implement ``__len__``, ``key``, ``_image``."""

    spec: str = ""
    class_names: tuple[str, ...] | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def key(self, index: int) -> str:
        raise NotImplementedError

    def label(self, index: int) -> int | None:
        return None

    def _image(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def fingerprint(self, index: int) -> str:
        """sha256 (hex) of the sample's content: its file's bytes, or for a built-in dataset
        its stored array (dtype, shape and bytes). Raises :class:`SampleError` when the
        sample cannot be read."""
        return array_digest(self._image(index))

    def load(self, index: int) -> Sample:
        """The sample at ``index``; raises :class:`SampleError` if it cannot be read."""
        if not 0 <= index < len(self):
            raise SampleError(f"sample index {index} out of range for {self.spec} (n={len(self)})")
        image = self._image(index)
        if not np.all(np.isfinite(image)):
            raise SampleError(f"sample {self.key(index)} has non-finite pixel values")
        return Sample(index=index, key=self.key(index), image=image, label=self.label(index))

    def load_many(self, indices: Sequence[int]) -> tuple[list[Sample], dict[int, str]]:
        """Samples for ``indices`` and ``{index: error message}`` for those that failed."""
        samples: list[Sample] = []
        errors: dict[int, str] = {}
        for i in indices:
            try:
                samples.append(self.load(i))
            except SampleError as exc:
                errors[i] = str(exc)
        return samples, errors


DatasetFactory = Callable[[str], Dataset]
DATASETS: Registry[DatasetFactory] = Registry("dataset")


class DigitsDataset(Dataset):
    def __init__(self, arg: str = "") -> None:
        from xaiq.xai.digits import digits_arrays

        self.spec = "digits"
        self._images, self._labels = digits_arrays()
        self.class_names = tuple(str(i) for i in range(10))

    def __len__(self) -> int:
        return len(self._labels)

    def key(self, index: int) -> str:
        return f"digits/{index}"

    def label(self, index: int) -> int | None:
        return int(self._labels[index])

    def _image(self, index: int) -> np.ndarray:
        return self._images[index]


def array_digest(array: np.ndarray) -> str:
    """sha256 (hex) of an array's dtype, shape and C-order bytes."""
    arr = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    digest.update(arr.tobytes())
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """sha256 (hex) of a file's bytes; :class:`SampleError` naming the file if unreadable."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise SampleError(f"cannot read {path}: {exc.strerror or exc}") from None
    return digest.hexdigest()


_HEX = re.compile(r"[0-9a-f]{2}")


def escape_name(name: str) -> str:
    """``name`` (from ``os.fsdecode``: bytes that are not UTF-8 are lone surrogates) as text
    every store accepts: each such byte becomes ``\\xNN`` and a backslash ``\\\\``; anything
    else is kept. :func:`unescape_name` reverses it."""
    out = []
    for ch in name:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:  # surrogateescape's encoding of byte code - 0xDC00
            out.append(f"\\x{code - 0xDC00:02x}")
        else:
            out.append(ch)
    return "".join(out)


def unescape_name(key: str) -> str:
    """The name :func:`escape_name` escaped (``os.fsencode`` of it gives the original bytes).
    Raises ``ValueError`` for a backslash that does not start an escape it writes."""
    out = []
    i = 0
    while i < len(key):
        ch = key[i]
        if ch != "\\":
            out.append(ch)
            i += 1
        elif key.startswith("\\\\", i):
            out.append("\\")
            i += 2
        elif key.startswith("\\x", i) and _HEX.fullmatch(key[i + 2 : i + 4]):
            value = int(key[i + 2 : i + 4], 16)
            if value < 0x80:  # escape_name writes only bytes that are not UTF-8
                raise ValueError(f"not an escaped name: {key!r}")
            out.append(chr(0xDC00 + value))
            i += 4
        else:
            raise ValueError(f"not an escaped name: {key!r}")
    return "".join(out)


SKIMAGE_SAMPLES = ("astronaut", "camera", "cat", "coffee", "coins", "rocket", "chelsea")


class SkimageDataset(Dataset):
    def __init__(self, arg: str = "") -> None:
        names = tuple(n for n in arg.split(",") if n) or SKIMAGE_SAMPLES
        for n in names:
            if n not in SKIMAGE_SAMPLES:
                raise DatasetError(
                    f"unknown skimage sample {n!r}; known: {', '.join(SKIMAGE_SAMPLES)}"
                )
        self.spec = "skimage" + (f":{arg}" if arg else "")
        self._names = names

    def __len__(self) -> int:
        return len(self._names)

    def key(self, index: int) -> str:
        return f"skimage/{self._names[index]}"

    def _image(self, index: int) -> np.ndarray:
        from skimage import data

        arr = np.asarray(getattr(data, self._names[index])())
        return arr.astype(np.float32) / (255.0 if arr.dtype == np.uint8 else 1.0)


class FolderDataset(Dataset):
    def __init__(self, arg: str) -> None:
        root = Path(arg)
        if not root.is_dir():
            raise DatasetError(f"image folder not found: {root}")
        self.spec = f"folder:{root}"
        self.root = root
        subdirs = sorted(p for p in root.iterdir() if p.is_dir())
        files: list[tuple[Path, int | None]] = []
        if subdirs:
            self.class_names = tuple(escape_name(p.name) for p in subdirs)
            for label, sub in enumerate(subdirs):
                files += [(f, label) for f in _image_files_below(sub)]
        else:
            files = [(f, None) for f in _image_files(root)]
        if not files:
            raise DatasetError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {root}")
        self._files = files

    def __len__(self) -> int:
        return len(self._files)

    def key(self, index: int) -> str:
        return escape_name(self._files[index][0].relative_to(self.root).as_posix())

    def path(self, key: str) -> Path:
        """The file of the sample with ``key`` (the inverse of :meth:`key`)."""
        return self.root / unescape_name(key)

    def label(self, index: int) -> int | None:
        return self._files[index][1]

    def _image(self, index: int) -> np.ndarray:
        return read_image(self._files[index][0])

    def fingerprint(self, index: int) -> str:
        return file_digest(self._files[index][0])


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if _is_image(p))


def _walk(folder: Path, seen: set[tuple[int, int]]) -> Iterator[Path]:
    """Every file below ``folder``; a symlinked folder is followed once (no loops)."""
    try:
        st = folder.stat()
    except OSError:
        return
    if (st.st_dev, st.st_ino) in seen:
        return
    seen.add((st.st_dev, st.st_ino))
    for entry in folder.iterdir():
        if entry.is_dir():
            yield from _walk(entry, seen)
        else:
            yield entry


def _image_files_below(folder: Path) -> list[Path]:
    """Image files in ``folder`` and its sub-folders (at any depth), in the order of their
    relative paths: a class folder without sub-folders keeps its order by name."""
    found = [p for p in _walk(folder, set()) if _is_image(p)]
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


class FileDataset(Dataset):
    def __init__(self, arg: str) -> None:
        self.path = Path(arg)
        if not self.path.is_file():
            raise DatasetError(f"image file not found: {self.path}")
        self.spec = f"file:{self.path}"

    def __len__(self) -> int:
        return 1

    def key(self, index: int) -> str:
        return escape_name(self.path.name)

    def _image(self, index: int) -> np.ndarray:
        return read_image(self.path)

    def fingerprint(self, index: int) -> str:
        return file_digest(self.path)


class TorchvisionDataset(Dataset):
    """MNIST / CIFAR-10 from a local root (``download=False``)."""

    def __init__(self, kind: str, arg: str) -> None:
        import torchvision

        root, _, split = arg.partition(":")
        train = split != "test"
        cls = {"mnist": torchvision.datasets.MNIST, "cifar10": torchvision.datasets.CIFAR10}[kind]
        try:
            self._ds = cls(root=root, train=train, download=False)
        except (RuntimeError, OSError) as exc:
            raise DatasetError(f"{kind} not found under {root}: {exc}") from None
        self.spec = f"{kind}:{arg}"
        self._kind = kind
        self.class_names = tuple(getattr(self._ds, "classes", ())) or None

    def __len__(self) -> int:
        return len(self._ds)

    def key(self, index: int) -> str:
        return f"{self._kind}/{index}"

    def label(self, index: int) -> int | None:
        return int(self._ds.targets[index])

    def _image(self, index: int) -> np.ndarray:
        img, _ = self._ds[index]
        return np.asarray(img, dtype=np.float32) / 255.0

    def fingerprint(self, index: int) -> str:
        data = self._ds.data[index]  # the stored uint8 array (a tensor for MNIST)
        return array_digest(np.asarray(data.numpy() if hasattr(data, "numpy") else data))


DATASETS.add("digits", DigitsDataset)
DATASETS.add("skimage", SkimageDataset)
DATASETS.add("folder", FolderDataset)
DATASETS.add("file", FileDataset)
DATASETS.add("mnist", lambda arg: TorchvisionDataset("mnist", arg))
DATASETS.add("cifar10", lambda arg: TorchvisionDataset("cifar10", arg))


def open_dataset(spec: str) -> Dataset:
    """Open the dataset named by ``spec`` (see the module docstring)."""
    kind, sep, arg = spec.partition(":")
    if kind in DATASETS:
        return DATASETS.get(kind)(arg)
    path = Path(spec)
    if path.is_dir():
        return FolderDataset(spec)
    if path.is_file():
        return FileDataset(spec)
    if sep or "/" in spec or "." in spec:
        raise DatasetError(f"dataset not found: {spec} (no such file or folder)")
    DATASETS.get(kind)  # raises UnknownNameError listing the known names
    raise AssertionError("unreachable")
