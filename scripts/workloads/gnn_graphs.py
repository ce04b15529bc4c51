"""A message-passing GNN regressing a property of small generated graphs, in plain torch, AdamW.

Run it (a few seconds on one CPU core, no download: the graphs are generated from a seed):

    python scripts/workloads/gnn_graphs.py
    autowarm probe scripts/workloads/gnn_graphs.py                   # pick warmup + peak LR

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE, and
--score-on-val: probe trials are scored by the validation loss (``autowarm.score_with``)
instead of the training loss (no effect outside a probe).

Why this workload: graph regression as people write it for molecules without a graph library
-- graphs padded to 20 nodes as dense adjacency matrices, one-hot node types (4), three
GraphConv layers (Morris et al. 2019: h <- ReLU(W_self h + W_nbr sum of the neighbours' h),
64 wide), a sum over the nodes and an MLP head, MSE. Each graph is an Erdos-Renyi graph of
8 to 20 nodes (mean degree 3), its target a made-up "energy": a bond term per edge (a fixed
table over the two end types) plus a crowding term per node with more than two neighbours,
standardised, plus noise of std 0.3 -- the part no model can predict, which a model that
memorises its few training graphs fits anyway. AdamW at its default LR (1e-3) on mini-batches
of 16 fed by a shuffling ``DataLoader``; 400 training graphs, which 1,000 steps see 40 times
(40 passes); 600 other graphs (their targets as noisy) are the validation set.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import autowarm

# -----------------------------------------------------------------------------------------
# 0) defaults: what a typical user writes. AdamW's default LR (1e-3), no warmup.
DEFAULTS = dict(steps=1000, lr=1e-3, warmup=0, min_lr_ratio=0.0, seed=0)
BATCH = 16
MIN_NODES, MAX_NODES, MEAN_DEGREE = 8, 20, 3.0
TYPES, WIDTH, LAYERS = 4, 64, 3
NOISE = 0.3  # std of the unpredictable part of a (standardised) target
N_TRAIN, N_VAL = 400, 600  # the graphs are fixed for all seeds (their own generator)


def build_data() -> tuple[torch.Tensor, ...]:
    """(adjacency [N, 20, 20], one-hot node types [N, 20, 4], target [N]) for the training
    and the validation graphs; padding nodes have no type (an all-zero row) and no edges."""
    gen = torch.Generator().manual_seed(1234)
    n = N_TRAIN + N_VAL
    bond = 2 * torch.rand(TYPES, TYPES, generator=gen) - 1
    bond = (bond + bond.T) / 2  # an edge's energy does not depend on its direction
    crowding = torch.rand(TYPES, generator=gen)
    adj = torch.zeros(n, MAX_NODES, MAX_NODES)
    feats = torch.zeros(n, MAX_NODES, TYPES)
    target = torch.zeros(n)
    for g in range(n):
        size = int(torch.randint(MIN_NODES, MAX_NODES + 1, (1,), generator=gen))
        upper = torch.rand(size, size, generator=gen) < MEAN_DEGREE / (size - 1)
        a = torch.triu(upper, diagonal=1).float()
        a = a + a.T  # undirected, no self-loops
        types = torch.randint(TYPES, (size,), generator=gen)
        onehot = F.one_hot(types, TYPES).float()
        degree = a.sum(1)
        # each edge counted once (a is symmetric, so halve the sum over ordered pairs)
        bonds = 0.5 * (a * bond[types][:, types]).sum()
        crowd = (crowding[types] * (degree - 2).clamp(min=0)).sum()
        adj[g, :size, :size], feats[g, :size], target[g] = a, onehot, bonds + crowd
    y = (target - target.mean()) / target.std() + NOISE * torch.randn(n, generator=gen)
    return (
        adj[:N_TRAIN], feats[:N_TRAIN], y[:N_TRAIN],
        adj[N_TRAIN:], feats[N_TRAIN:], y[N_TRAIN:],
    )  # fmt: skip


class GraphConv(nn.Module):
    """h <- ReLU(W_self h + W_nbr (A h)): the sum over neighbours is one batched matmul with
    the dense adjacency, which is zero for padding nodes, so they send nothing."""

    def __init__(self, width_in: int) -> None:
        super().__init__()
        self.self_ = nn.Linear(width_in, WIDTH)
        self.nbr = nn.Linear(width_in, WIDTH, bias=False)

    def forward(self, adj: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return F.relu(self.self_(h) + self.nbr(adj @ h))


class GNN(nn.Module):
    """Three GraphConv layers (64) -> sum over the real nodes -> 64 -> ReLU -> 1; MSE."""

    def __init__(self) -> None:
        super().__init__()
        widths = [TYPES] + [WIDTH] * LAYERS
        self.convs = nn.ModuleList(GraphConv(w) for w in widths[:-1])
        self.head = nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 1))

    def forward(self, adj: torch.Tensor, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        mask = x.sum(-1, keepdim=True)  # 1 for a real node, 0 for padding
        h = x
        for conv in self.convs:
            h = conv(adj, h) * mask  # the biases would make padding nodes non-zero
        pred = self.head(h.sum(1)).squeeze(-1)  # a sum: the energy grows with the graph
        return F.mse_loss(pred, targets)


def build_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return GNN()


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=lr)


def get_lr(it: int, *, lr: float, warmup: int, steps: int, min_lr_ratio: float) -> float:
    """nanoGPT-style schedule, a pure function of the step."""
    # 1) linear warmup from lr/(warmup+1) -- never exactly 0, so step 0 is not wasted
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    # 2) cosine decay from lr to min_lr_ratio * lr over the rest of the run
    progress = (it - warmup) / max(1, steps - warmup)
    coeff = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return lr * (min_lr_ratio + (1.0 - min_lr_ratio) * coeff)


@torch.no_grad()
def evaluate(model: nn.Module, adj: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
    """MSE on the whole validation set (its noise included: 0.09 is the floor)."""
    model.eval()
    loss = model(adj, x, y).item()
    model.train()
    return loss


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"], help="optimizer steps")
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="peak learning rate")
    p.add_argument("--warmup", type=int, default=DEFAULTS["warmup"], help="warmup steps")
    p.add_argument("--min-lr-ratio", type=float, default=DEFAULTS["min_lr_ratio"])
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--metrics-out", help="write final metrics as JSON to this file")
    p.add_argument("--score-on-val", action="store_true", help="probe on the validation loss")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> float:
    args = parse_args(argv)
    # 1) one thread: probes and benchmark grid points run side by side, and a single thread
    #    keeps the step time (and thus every timing we report) repeatable
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    adj_train, x_train, y_train, adj_val, x_val, y_val = build_data()
    model = build_model(args.seed)
    # the loader's own generator: the shuffle order depends on the seed and on nothing else
    # (not on how many random numbers the model's init drew); drop_last keeps every batch the
    # same size, so the loss's noise does not jump at the end of a pass
    loader = DataLoader(
        TensorDataset(adj_train, x_train, y_train), batch_size=BATCH, shuffle=True,
        drop_last=True, generator=torch.Generator().manual_seed(args.seed),
    )  # fmt: skip

    # 2) optimizer, wrapped by autowarm: the monitor watches the loss; under `autowarm probe`
    #    it also owns the LR (our get_lr below is then overridden)
    optimizer = build_optimizer(model, args.lr)
    optimizer = autowarm.wrap(optimizer)
    if args.score_on_val:  # a probe trial's score: the validation loss where it ends
        autowarm.score_with(lambda: evaluate(model, adj_val, x_val, y_val))

    # 3) train: one batch per step, a new shuffled pass whenever the loader runs out
    train_losses: list[float] = []
    initial = None
    batches = iter(loader)
    for it in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = get_lr(
                it,
                lr=args.lr,
                warmup=args.warmup,
                steps=args.steps,
                min_lr_ratio=args.min_lr_ratio,
            )
        try:
            ab, xb, yb = next(batches)
        except StopIteration:
            batches = iter(loader)
            ab, xb, yb = next(batches)
        loss = model(ab, xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.report(loss)
        optimizer.step()
        value = loss.item()
        initial = value if initial is None else initial
        train_losses.append(value)

    # 4) evaluate and report; "diverged" = nonfinite or ended above where it started
    final = evaluate(model, adj_val, x_val, y_val)
    diverged = not math.isfinite(final) or final > (initial or math.inf)
    metrics = {
        "final_eval_loss": final,
        "diverged": diverged,
        "initial_loss": initial,
        "steps": args.steps,
        "lr": args.lr,
        "warmup": args.warmup,
        "seed": args.seed,
        "train_losses": train_losses[:: max(1, args.steps // 100)],
        "wall_s": time.perf_counter() - t0,
    }
    if args.metrics_out:  # write then rename: a reader never sees half a file
        tmp = Path(f"{args.metrics_out}.tmp")
        tmp.write_text(json.dumps(metrics))
        tmp.replace(args.metrics_out)
    print(f"final eval loss: {final:.4f}")
    return final


if __name__ == "__main__":
    main()
