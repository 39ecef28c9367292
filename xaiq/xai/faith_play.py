"""The forward loop of the deletion/insertion games (:mod:`xaiq.xai.faithfulness`): step images
made on the fly, batch by batch, and (``substrate="road"``) imputed before the forward."""

from __future__ import annotations

import torch
from torch import nn

from xaiq.xai.faith_orders import STREAM_ROAD_NOISE
from xaiq.xai.noise import counter_keys_at, normal_from_keys
from xaiq.xai.road import road_impute


def _road_rows(
    buffer: torch.Tensor,
    changed: torch.Tensor,
    rows: list[tuple[int, int, int, int]],
    seed: int,
    road_noise: float,
) -> None:
    """Impute, in place, the removed pixels of the buffer rows ``(start, stop, sample id,
    first step)``; the noise of (sample, step) is the same in every game and batch."""
    idx = torch.cat([torch.arange(a, b) for a, b, _, _ in rows]).to(buffer.device)
    sids = torch.cat([torch.full((b - a,), sid) for a, b, sid, _ in rows])
    steps = torch.cat([torch.arange(s0, s0 + b - a) for a, b, _, s0 in rows])
    _, c, h, w = buffer.shape
    noise = None
    if road_noise > 0:
        keys = counter_keys_at(seed, sids, STREAM_ROAD_NOISE, steps, 1)[:, 0]
        noise = normal_from_keys(keys.to(buffer.device), c * h * w).view(-1, c, h, w)
        noise = noise.to(buffer.dtype) * road_noise
    buffer[idx] = road_impute(buffer[idx], changed[idx] > 0, noise=noise)


@torch.no_grad()
def play_games(
    model: nn.Module,
    starts: torch.Tensor,
    finishes: torch.Tensor,
    ranks: torch.Tensor,
    n_steps: torch.Tensor,
    step: int,
    targets: torch.Tensor,
    batch_size: int,
    *,
    impute: list[bool] | None = None,
    sample_ids: torch.Tensor | None = None,
    seed: int = 0,
    road_noise: float = 0.0,
) -> tuple[torch.Tensor, list[int]]:
    """The curves of ``G`` games, concatenated (float32 on the device), and their lengths
    ``n_steps[g] + 1``: game ``g`` at step ``i`` shows ``finishes[g]`` where
    ``ranks[g] < i * step`` and ``starts[g]`` elsewhere; games with ``impute[g]`` then have
    those pixels imputed by ROAD (noise seeded by ``seed`` and ``sample_ids[g]``).

    The step images of a forward are written into one buffer game by game: each game's rows
    are a run of consecutive steps, made by broadcasting its start, finish and ranks against
    the run's thresholds (no per-row copies of them, which took a fifth of the time on
    digits). The choice is ``lerp(start, finish, changed)`` with ``changed`` 0 or 1: exact
    for finite values (``torch.lerp`` computes ``finish - (finish - start) * 0`` at weight 1)
    and twice as fast as ``where`` on a boolean mask."""
    g_count, c, h, w = starts.shape
    device = starts.device
    lengths = (n_steps + 1).tolist()
    total = sum(lengths)
    offsets = [0]
    for n in lengths:
        offsets.append(offsets[-1] + n)
    ids = sample_ids.tolist() if sample_ids is not None else list(range(g_count))
    # ranks and thresholds compared as floats (5x faster than int64 into a float mask);
    # float32 holds every integer below 2**24 exactly, float64 the larger images
    exact = torch.float32 if h * w + step < (1 << 24) else torch.float64
    ranks4 = ranks.view(g_count, 1, h, w).to(exact)
    steps = (torch.arange(max(lengths), device=device).view(-1, 1, 1, 1) * step).to(exact)
    rows = min(batch_size, total)
    buffer = torch.empty(rows, c, h, w, dtype=starts.dtype, device=device)
    changed = torch.empty(rows, 1, h, w, dtype=starts.dtype, device=device)
    row_targets = torch.repeat_interleave(targets, n_steps + 1).view(-1, 1)
    probs = torch.empty(total, dtype=torch.float32, device=device)
    game = 0
    for a in range(0, total, batch_size):
        b = min(total, a + batch_size)
        while offsets[game + 1] <= a:
            game += 1
        j = game
        road: list[tuple[int, int, int, int]] = []
        while j < g_count and offsets[j] < b:  # the games with rows in [a, b)
            lo, hi = max(a, offsets[j]), min(b, offsets[j + 1])
            run = slice(lo - a, hi - a)
            s0, s1 = lo - offsets[j], hi - offsets[j]
            torch.lt(ranks4[j], steps[s0:s1], out=changed[run])
            torch.lerp(starts[j], finishes[j], changed[run], out=buffer[run])
            if impute is not None and impute[j]:
                road.append((lo - a, hi - a, int(ids[j]), s0))
            j += 1
        if road:
            _road_rows(buffer, changed, road, seed, road_noise)
        p = model(buffer[: b - a]).float().softmax(dim=1)
        probs[a:b] = p.gather(1, row_targets[a:b]).squeeze(1)
    return probs, lengths
