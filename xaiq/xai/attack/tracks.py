"""Many (sample, strategy) searches at once: the attack's batched loop (docs/architecture.md).

A *track* is one strategy attacking one sample from its original image. Per track (the
source lab's procedure when ``candidates=1``)::

    current = x;  best = score(x)
    for it in range(max_iters):
        cand_k = current + mask * sigma * z(seed, sample_id, strategy, it, k)   k < K
        (clamp the changed values into the model's valid range when clamp=True)
        k* = argmax_k score(cand_k)   (ties: lowest k)
        if score(cand_k*) > best: current, best = cand_k*, score(cand_k*)
        if stop(argmax f(current)): break
    a failure keeps the highest-scoring candidate it evaluated (which is ``current`` once
    any candidate was accepted; otherwise the best of the rejected ones, not the original)

``score`` is the goal log-probability (minus the true class's in untargeted mode); ``z``
comes from :func:`xaiq.xai.noise.normal` with the strategy's own stream and the track's own
iteration counter, so a track's outcome depends only on the seed, the sample, the strategy
and its mask, never on when it ran nor beside which other tracks. All candidates of all
running tracks go through one forward per step (split only past ``batch_size``).

Schedules:

- **independent** (``compare=True``): every track runs from the start to success or
  ``max_iters``.
- **chain** (the fallback chain): a sample's strategy ``j`` is *needed* once strategies
  ``0..j-1`` failed on it. Needed tracks always run. While fewer than ``fill`` candidate
  rows are running, tracks that are not yet needed start *speculatively* (earliest strategy
  first; a guided one only where its map is already computed); a success cancels the
  sample's later tracks. A needed track's outcome is the one the sequential chain computes,
  so the chain's results do not depend on ``fill`` (tested); speculation only fills
  forwards that would run nearly empty.

Lookahead (both schedules): while the running tracks still put fewer than ``fill`` candidate
rows in a forward, each track's next ``d = fill // rows`` iterations go into the same forward,
all made from its current image (the noise of an iteration depends only on its counter).
They are applied in order, and an iteration is used only while the image it was made from
is still current: the first accepted candidate, or the track's end, discards the rest. So the
outcome is the one a step at a time gives (tested), and a long tail of a few hard images runs
near the best batch size instead of a few rows per forward; the rows thrown away are the price.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from xaiq.xai.attack.search import forward_batched, scores_from_logits, stop_reached
from xaiq.xai.noise import counter_keys_at, normal, normal_from_keys

NEW, RUNNING, SUCCEEDED, FAILED, CANCELLED = 0, 1, 2, 3, 4
MaskFn = Callable[[int, torch.Tensor], torch.Tensor]  # (strategy j, positions [m]) -> [m,H,W]
ReadyFn = Callable[[int, torch.Tensor], torch.Tensor]  # (strategy j, positions) -> bool [m]


@dataclass
class SearchConfig:
    untargeted: bool
    sigma: float
    max_iters: int
    candidates: int
    seed: int
    batch_size: int
    fill: int
    independent: bool
    clamp_range: tuple[torch.Tensor, torch.Tensor] | None = None


@dataclass
class TrackOutcomes:
    """Per strategy ``j`` and sample ``i``: ``final [S, n, C*H*W]``, ``score``/``pred``
    ``[S, n]``, ``iterations [S, n]`` int64 (device tensors) and ``status [S, n]`` int8 (CPU):
    SUCCEEDED or FAILED for every track that ran to its end, NEW/CANCELLED for the others."""

    final: torch.Tensor
    score: torch.Tensor
    pred: torch.Tensor
    iterations: torch.Tensor
    status: torch.Tensor


_COLUMNS = (
    *("rows", "cur", "best", "pred", "idx", "t", "sid", "it"),
    *("top", "top_score", "top_pred", "lo", "hi"),
)


class _Group:
    """The running tracks of one strategy (rows in start order)."""

    def __init__(self, j: int, stream: int, dim: int, device: torch.device) -> None:
        self.j, self.stream, self.dim = j, stream, dim
        z = torch.zeros
        self.rows = z(0, dtype=torch.int64, device=device)
        self.cur = z(0, dim, device=device)
        self.best = z(0, device=device)
        self.pred = z(0, dtype=torch.int64, device=device)
        self.idx = z(0, 0, dtype=torch.int64, device=device)
        self.t = z(0, dtype=torch.int64, device=device)
        self.sid = z(0, dtype=torch.int64, device=device)
        self.it = z(0, dtype=torch.int64, device=device)
        self.top = z(0, dim, device=device)  # the highest-scoring candidate seen so far
        self.top_score = z(0, device=device)
        self.top_pred = z(0, dtype=torch.int64, device=device)
        self.lo: torch.Tensor | None = None
        self.hi: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.rows.numel())

    def add(self, **cols: torch.Tensor) -> None:
        for name, value in cols.items():
            old = getattr(self, name)
            setattr(
                self, name, value if old is None or old.numel() == 0 else torch.cat([old, value])
            )

    def keep(self, keep: torch.Tensor) -> None:
        for name in _COLUMNS:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[keep])


def _noise(group: _Group, seed: int, k: int, nel: int, depth: int = 1) -> torch.Tensor:
    """``[A, depth, K, nel]`` normals of each row at its iterations ``it .. it+depth-1``
    (bits as :func:`normal`), in one pass."""
    a = group.size
    if depth == 1:
        its = torch.unique(group.it).tolist()
        if len(its) == 1:  # every row at one iteration: the scalar keys are folded once
            z = normal(seed, group.sid, int(its[0]), k, nel, stream=group.stream)
            return z.view(a, 1, k, nel)
    ahead = torch.arange(depth, dtype=torch.int64, device=group.it.device)
    iterations = (group.it[:, None] + ahead[None, :]).flatten()
    sids = group.sid.repeat_interleave(depth)
    keys = counter_keys_at(seed, sids, group.stream, iterations, k)
    return normal_from_keys(keys, nel).view(a, depth, k, nel)


def element_index(pixel_mask: torch.Tensor, channels: int) -> torch.Tensor:
    """Flat ``[C*H*W]`` indices ``[n, m*C]`` (ascending) of the values under the pixels
    of ``pixel_mask [n, H, W]`` in every channel."""
    n = pixel_mask.shape[0]
    elems = pixel_mask.reshape(n, 1, -1).expand(n, channels, -1).reshape(n, -1)
    counts = elems.sum(dim=1)
    if n and bool((counts != counts[0]).any()):
        raise ValueError("every pixel mask of one strategy must select the same number of pixels")
    return elems.nonzero()[:, 1].view(n, -1)


class TrackSearch:
    """Runs the tracks of ``streams`` (one noise stream per strategy, in chain order)."""

    def __init__(
        self,
        module: nn.Module,
        x: torch.Tensor,
        targets: torch.Tensor,
        sample_ids: torch.Tensor,
        score0: torch.Tensor,
        pred0: torch.Tensor,
        streams: list[int],
        masks: MaskFn,
        ready: ReadyFn,
        cfg: SearchConfig,
    ) -> None:
        n, c, h, w = x.shape
        s, dev = len(streams), x.device
        self.module, self.x, self.t, self.ids, self.cfg = module, x, targets, sample_ids, cfg
        self.masks, self.ready, self.shape = masks, ready, (c, h, w)
        flat = x.reshape(n, -1)
        self.out = TrackOutcomes(
            final=flat[None].repeat(s, 1, 1),
            score=score0[None].repeat(s, 1),
            pred=pred0[None].repeat(s, 1),
            iterations=torch.zeros(s, n, dtype=torch.int64, device=dev),
            status=torch.zeros(s, n, dtype=torch.int8),
        )
        at_goal = stop_reached(pred0, targets, cfg.untargeted).cpu()
        self.out.status[:, at_goal] = CANCELLED
        self.groups = [_Group(j, stream, c * h * w, dev) for j, stream in enumerate(streams)]
        # called with the number of samples whose search has ended (progress display only)
        self.on_progress: Callable[[int], None] | None = None

    # -- scheduling ------------------------------------------------------------------------

    def run(self) -> TrackOutcomes:
        st = self.out.status
        if self.cfg.independent:
            for j in range(st.shape[0]):
                self._start(j, (st[j] == NEW).nonzero().squeeze(1))
        else:
            self._schedule()
        self._report()
        while any(g.size for g in self.groups):
            if self._step():
                if not self.cfg.independent:
                    self._schedule()
                self._report()
        return self.out

    def _report(self) -> None:
        if self.on_progress is not None:
            st = self.out.status
            still_open = ((st == NEW) | (st == RUNNING)).any(0)
            self.on_progress(int((~still_open).sum()))

    def _schedule(self) -> None:
        st = self.out.status
        s, n = st.shape
        # a success cancels the sample's later tracks
        ok = st == SUCCEEDED
        first_ok = torch.where(ok.any(0), ok.to(torch.int8).argmax(0), torch.full((n,), s))
        later = torch.arange(s)[:, None] > first_ok[None, :]
        cancel = later & ((st == NEW) | (st == RUNNING))
        if bool(cancel.any()):
            for g in self.groups:
                if g.size:
                    hit = cancel[g.j, g.rows.cpu()]
                    if bool(hit.any()):
                        g.keep((~hit).to(g.rows.device))
            st[cancel] = CANCELLED
        # the first strategy not failed is needed: start it where it is new
        lead = torch.cumprod((st == FAILED).to(torch.int64), dim=0).sum(0)
        for j in range(s):
            pos = ((lead == j) & (st[j] == NEW)).nonzero().squeeze(1)
            if pos.numel():
                self._start(j, pos)
        if self.cfg.fill:
            self._speculate(lead)

    def _speculate(self, lead: torch.Tensor) -> None:
        k = self.cfg.candidates
        free = (self.cfg.fill - k * sum(g.size for g in self.groups)) // k
        st = self.out.status
        for j in range(st.shape[0]):
            if free <= 0:
                return
            pos = ((lead < j) & (st[j] == NEW)).nonzero().squeeze(1)
            if pos.numel() == 0:
                continue
            pos = pos[self.ready(j, pos)][:free]
            if pos.numel():
                self._start(j, pos)
                free -= int(pos.numel())

    def _start(self, j: int, pos: torch.Tensor) -> None:
        """Start strategy ``j`` on sample positions ``pos [m]`` (CPU int64)."""
        if pos.numel() == 0:
            return
        self.out.status[j, pos] = RUNNING
        dev = self.x.device
        p = pos.to(dev)
        idx = element_index(self.masks(j, pos).to(dev), self.shape[0])
        if idx.shape[1] == 0:  # an empty mask: nothing to search
            self.out.status[j, pos] = FAILED
            return
        g = self.groups[j]
        cols = {
            "rows": p,
            "cur": self.out.final[j, p],
            "best": self.out.score[j, p],
            "pred": self.out.pred[j, p],
            "idx": idx,
            "t": self.t[p],
            "sid": self.ids[p],
            "it": torch.zeros_like(p),
            "top": self.out.final[j, p],
            "top_score": torch.full((p.numel(),), -torch.inf, device=dev),
            "top_pred": self.out.pred[j, p],
        }
        if self.cfg.clamp_range is not None:  # the changeable values' bounds [m, 1, nel]
            lo, hi = self.cfg.clamp_range
            cols["lo"], cols["hi"] = lo[idx][:, None, :], hi[idx][:, None, :]
        if g.size == 0:
            g.idx = idx.new_zeros(0, idx.shape[1])
            g.lo = g.hi = None
        g.add(**cols)

    # -- one step of every running track ----------------------------------------------------

    def _step(self) -> bool:
        """One forward for every running track; True when some track ended.

        While fewer than ``fill`` candidate rows are running, each track's next iterations
        are evaluated ahead in the same forward, made from its current image as if none of
        its candidates were accepted (their noise depends only on the iteration counter).
        They are then taken in order: an iteration's outcome is used only while the
        image it was made from is still current, so the first accepted candidate (or the
        track's end) discards the rest, and every decision is the one a step at a time
        makes."""
        cfg, k = self.cfg, self.cfg.candidates
        c, h, w = self.shape
        live = [g for g in self.groups if g.size]
        rows = k * sum(g.size for g in live)
        depth = max(1, cfg.fill // rows) if cfg.fill and rows < cfg.fill else 1
        cands, depths = [], []
        for g in live:
            d = max(1, min(depth, cfg.max_iters - int(g.it.min())))
            cands.append(self._candidates(g, d))
            depths.append(d)
        batch = cands[0] if len(cands) == 1 else torch.cat([x.flatten(0, 2) for x in cands])
        logits = forward_batched(self.module, batch.view(-1, c, h, w), cfg.batch_size)
        ended = False
        start = 0
        for g, cand, d in zip(live, cands, depths, strict=True):
            a = g.size
            lg = logits[start : start + a * d * k].view(a, d, k, -1)
            start += a * d * k
            ended |= self._take(g, cand, lg)
        return ended

    def _candidates(self, g: _Group, d: int) -> torch.Tensor:
        """``[A, d, K, C*H*W]``: the candidates of iterations ``it .. it+d-1`` of every row of
        ``g``, each made from the row's current image."""
        cfg, k = self.cfg, self.cfg.candidates
        a, nel = g.size, g.idx.shape[1]
        z = _noise(g, cfg.seed, k, nel, d)
        values = z.mul_(cfg.sigma).add_(g.cur.gather(1, g.idx)[:, None, None, :])
        if g.lo is not None and g.hi is not None:
            values = values.clamp_(min=g.lo[:, None], max=g.hi[:, None])
        cand = g.cur[:, None, None, :].repeat(1, d, k, 1)
        cand.scatter_(3, g.idx[:, None, None, :].expand(a, d, k, nel), values)
        return cand

    def _take(self, g: _Group, cand: torch.Tensor, lg: torch.Tensor) -> bool:
        """Apply the ``d`` evaluated iterations (``cand [A, d, K, ...]``, logits ``lg``) of
        ``g`` in order; True when some track ended."""
        cfg, k = self.cfg, self.cfg.candidates
        a, d = cand.shape[0], cand.shape[1]
        scores = scores_from_logits(lg, g.t[:, None, None].expand(a, d, k), cfg.untargeted)
        top_scores, top_ks = scores.max(dim=2)  # [A, d]
        valid = torch.ones(a, dtype=torch.bool, device=cand.device)
        finished = torch.zeros_like(valid)
        for j in range(d):
            top_score, top_k = top_scores[:, j], top_ks[:, j]
            better = (valid & (top_score > g.top_score)).nonzero().squeeze(1)
            if better.numel():
                ks = top_k[better]
                g.top[better] = cand[better, j, ks]
                g.top_score[better] = top_score[better]
                g.top_pred[better] = lg[better, j, ks].argmax(dim=1)
            accepted = valid & (top_score > g.best)
            accept = accepted.nonzero().squeeze(1)
            if accept.numel():
                ks = top_k[accept]
                g.cur[accept] = cand[accept, j, ks]
                g.best[accept] = top_score[accept]
                g.pred[accept] = lg[accept, j, ks].argmax(dim=1)
            g.it += valid
            reached = stop_reached(g.pred, g.t, cfg.untargeted)
            done = valid & (reached | (g.it >= cfg.max_iters))
            if bool(done.any()):
                self._finish(g, done, reached)
                finished |= done
            valid &= ~(accepted | done)
            if j + 1 < d and not bool(valid.any()):
                break
        if bool(finished.any()):
            g.keep(~finished)
            return True
        return False

    def _finish(self, g: _Group, done: torch.Tensor, reached: torch.Tensor) -> None:
        """Record the outcome of the rows ``done`` of ``g`` (they stay in the group)."""
        rows = g.rows[done]
        o = self.out
        # a success keeps the image that reached the goal; a failure the highest-scoring
        # candidate it evaluated (the original only if none ran)
        ok = reached[done][:, None]
        o.final[g.j, rows] = torch.where(ok, g.cur[done], g.top[done])
        o.score[g.j, rows] = torch.where(ok[:, 0], g.best[done], g.top_score[done])
        o.pred[g.j, rows] = torch.where(ok[:, 0], g.pred[done], g.top_pred[done])
        o.iterations[g.j, rows] = g.it[done]
        flags = torch.where(reached[done], SUCCEEDED, FAILED).to(torch.int8).cpu()
        o.status[g.j, rows.cpu()] = flags
