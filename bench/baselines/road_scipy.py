"""ROAD's noisy linear imputation the way the existing implementations do it: one image at a
time on the CPU, the sparse system built with numpy over the removed pixels (vectorised per
neighbour offset) and solved by ``scipy.sparse.linalg.spsolve`` for all channels at once.
The baseline of the ROAD bench row; no noise (the solve is what costs)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spl

_OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def impute_one(img: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """``img [C, H, W]``, ``removed [H, W]`` bool -> the imputed image (float64)."""
    c, h, w = img.shape
    idx = np.flatnonzero(removed.reshape(-1))
    if idx.size == 0:
        return img.astype(np.float64)
    var = -np.ones(h * w, dtype=np.int64)
    var[idx] = np.arange(idx.size)
    ys, xs = np.divmod(idx, w)
    flat = img.reshape(c, -1).astype(np.float64)
    diag = np.zeros(idx.size)
    b = np.zeros((idx.size, c))
    rows, cols, vals = [], [], []
    for dy, dx in _OFFSETS:
        weight = 1 / 6 if 0 in (dy, dx) else 1 / 12
        yy, xx = ys + dy, xs + dx
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        diag[inside] += weight
        nb = yy[inside] * w + xx[inside]
        eq = np.flatnonzero(inside)
        unknown = var[nb] >= 0
        rows.append(eq[unknown])
        cols.append(var[nb[unknown]])
        vals.append(np.full(int(unknown.sum()), -weight))
        np.add.at(b, eq[~unknown], weight * flat[:, nb[~unknown]].T)
    rows.append(np.arange(idx.size))
    cols.append(np.arange(idx.size))
    vals.append(diag)
    a = sp.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(idx.size, idx.size),
    )
    out = flat.copy()
    sol = spl.spsolve(a, b)
    out[:, idx] = sol.reshape(idx.size, c).T
    return out.reshape(c, h, w)


def impute_each(images: np.ndarray, removed: np.ndarray) -> list[np.ndarray]:
    """One solve per image: ``images [N, C, H, W]``, ``removed [N, H, W]``."""
    return [impute_one(images[i], removed[i]) for i in range(images.shape[0])]
