"""A tiny linear regression for the runner's tests; flags (or a JSON ``--config``) pick the
behaviour under test. Runs as a normal script: ``python train.py --steps 50``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch
from sklearn.datasets import make_regression

import autowarm

parser = argparse.ArgumentParser()
parser.add_argument("--config", help="JSON file whose keys override the defaults below")
parser.add_argument("--steps", type=int, default=100)
parser.add_argument("--lr", type=float, default=0.05)
SCHEDS = ["none", "lambda", "early", "nanogpt", "both", "hf", "timm", "epoch"]
parser.add_argument("--sched", choices=SCHEDS, default="none")
parser.add_argument("--log", help="append the effective LR of each group per step (JSON lines)")
parser.add_argument("--no-wrap", action="store_true")
parser.add_argument("--split", action="store_true", help="one optimizer for body, one for head")
parser.add_argument("--crash-at", type=int, default=-1)
parser.add_argument("--hang-at", type=int, default=-1)
parser.add_argument("--abort-at", type=int, default=-1)
parser.add_argument("--sleep", type=float, default=0.0, help="seconds per step")
parser.add_argument("--spawn-child", help="start a sleeping subprocess, write its pid here")
parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
parser.add_argument("--batch", type=int, default=64, help="DataLoader batch size (64: all)")
parser.add_argument("--accumulate", type=int, default=1, help="batches drawn per step")
parser.add_argument("--eval-draws", type=int, default=0, help="eval batches a step, no grad")
parser.add_argument("--detach", help="start sleeps outside the process group, pids here")
parser.add_argument("--nan-loss", action="store_true", help="the loss is NaN from the start")
parser.add_argument("--nan-from", type=int, default=-1, help="the loss is NaN from this step on")
parser.add_argument("--sub-train", help="first run a 3-step subprocess; it writes its steps here")
parser.add_argument("--lazy-monitor", action="store_true", help="batched reads, as on a GPU")
parser.add_argument("--worker-pids", help="each DataLoader worker appends its pid here")
parser.add_argument("--finally-raise", action="store_true")
parser.add_argument("--swallow", action="store_true", help="catch BaseException around step()")
parser.add_argument("--cuda-out", help="append the CUDA_VISIBLE_DEVICES this trial sees here")
parser.add_argument("--score-with", type=float, help="autowarm.score_with(): this value + |w|")
parser.add_argument("--momentum", type=float, default=0.0)
parser.add_argument("--adam", action="store_true", help="Adam instead of SGD")
parser.add_argument("--resume", help="a checkpoint to resume from, where it exists")
parser.add_argument("--save", help="save a checkpoint here at the end")
parser.add_argument("--weights-only", action="store_true", help="--save without the optimizer")
parser.add_argument("--compile", action="store_true", help="torch.compile the body (aot_eager)")
args = parser.parse_args()
if args.config:
    with open(args.config) as f:
        for key, value in json.load(f).items():
            setattr(args, key, value)

if args.cuda_out:
    with open(args.cuda_out, "a") as f:
        f.write(f"{os.environ.get('CUDA_VISIBLE_DEVICES')}\n")
torch.manual_seed(0)
torch.set_num_threads(1)
# sklearn (scipy's own OpenBLAS starts a thread pool at import) for the fork server's sake
x = torch.tensor(make_regression(n_samples=64, n_features=8, random_state=0)[0]).float()
y = x @ torch.randn(8, 1)
body = torch.nn.Linear(8, 8)  # 72 parameters: the largest group
head = torch.nn.Linear(8, 1)  # its LR is 0.1x the body's
groups = [{"params": body.parameters()}, {"params": head.parameters(), "lr": args.lr * 0.1}]
if args.split:  # one optimizer per module; the head's (wrapped second) steps first
    optimizers = [
        torch.optim.SGD(g["params"], lr=g.get("lr", args.lr), momentum=args.momentum)
        for g in groups
    ]
else:
    optimizers = [
        torch.optim.Adam(groups, lr=args.lr)
        if args.adam
        else torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum)
    ]
bases = [g["lr"] for o in optimizers for g in o.param_groups]


def lambda_lr(o: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(o, lambda s: min(1.0, s / 10))  # HF-style: 0 at 0


scheds = [lambda_lr(o) for o in optimizers if args.sched == "early"]  # before wrapping
if not args.no_wrap:
    optimizers = [autowarm.wrap(o) for o in optimizers]
    for o in optimizers:
        o.monitor.read_every = 16 if args.lazy_monitor else 1
if args.resume and os.path.exists(args.resume):  # the "pick up where it stopped" of many scripts
    checkpoint = torch.load(args.resume)
    body.load_state_dict(checkpoint["body"])
    head.load_state_dict(checkpoint["head"])
    if "optimizer" in checkpoint:
        optimizers[0].load_state_dict(checkpoint["optimizer"])
param_groups = [g for o in optimizers for g in o.param_groups]  # body's, head's
forward_body = torch.compile(body, backend="aot_eager") if args.compile else body
scheds += [lambda_lr(o) for o in optimizers if args.sched in ("lambda", "both", "epoch")]
if args.sched == "hf":  # transformers' own schedule function, as HF's no_trainer examples
    from transformers import get_cosine_schedule_with_warmup

    scheds += [get_cosine_schedule_with_warmup(o, 5, args.steps) for o in optimizers]
if args.sched == "timm":  # timm's own scheduler (not torch's) notes initial_lr, as torch's do
    for g in param_groups:
        g.setdefault("initial_lr", g["lr"])
if args.spawn_child:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(args.spawn_child + ".tmp", "w") as f:
        f.write(str(child.pid))
    os.replace(args.spawn_child + ".tmp", args.spawn_child)
if args.detach:  # its own session, and an orphan (its shell exits at once) in another one
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    shell = ["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"]
    orphan = subprocess.run(shell, start_new_session=True, capture_output=True, check=True)
    with open(args.detach + ".tmp", "w") as f:
        json.dump([sleeper.pid, int(orphan.stdout)], f)
    os.replace(args.detach + ".tmp", args.detach)
log = open(args.log, "a") if args.log else None  # noqa: SIM115
SUB_TRAIN = """
import sys, torch, autowarm
model = torch.nn.Linear(2, 1)
opt = autowarm.wrap(torch.optim.SGD(model.parameters(), lr=0.1))
for step in range(3):
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    with open(sys.argv[1], "w") as f:
        f.write(str(step + 1))
"""
if args.sub_train:  # a subprocess that wraps an optimizer too (a DDP rank, say)
    subprocess.run([sys.executable, "-c", SUB_TRAIN, args.sub_train], check=True)


def validation_score() -> float:
    """What autowarm.score_with() calls: logs the call, returns --score-with + |body weight|."""
    if log is not None:
        log.write(json.dumps({"scored": True, "grad": torch.is_grad_enabled()}) + "\n")
        log.flush()
    return args.score_with + float(body.weight.abs().sum())


if args.score_with is not None:
    autowarm.score_with(validation_score)


def note_worker(worker_id: int) -> None:
    if args.worker_pids:
        with open(args.worker_pids, "a") as f:
            f.write(f"{os.getpid()}\n")


# the whole batch each time by default, through worker processes when asked (so x stays the
# same data)
loader = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(x, y),
    batch_size=args.batch,
    num_workers=args.workers,
    worker_init_fn=note_worker,
    persistent_workers=args.workers > 0,
)


def batches():
    while True:
        yield from loader


# an evaluation set drawn under no_grad, more batches a step than the training data
evals = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:32], y[:32]), batch_size=4)


def train() -> None:
    data = batches()
    for it in range(args.steps):
        parts = [next(data) for _ in range(args.accumulate)]  # as gradient accumulation draws
        bx, by = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        with torch.no_grad():
            for _, _ in zip(range(args.eval_draws), evals):
                pass
        if args.sched in ("nanogpt", "both"):  # nanoGPT: set the LR by hand every iteration
            for g, base in zip(param_groups, bases):
                g["lr"] = base * 0.5 * (1 + it % 7)
        if args.sched == "timm":  # then sets the LR itself (its step_update after each step)
            for g in param_groups:
                g["lr"] = g["initial_lr"] * (1 + it) / args.steps
        if it == args.crash_at:
            raise RuntimeError(f"boom at step {it}")
        if it == args.hang_at:
            time.sleep(300)
        if it == args.abort_at:
            os.abort()
        loss = ((head(torch.tanh(forward_body(bx))) - by) ** 2).mean()
        if args.nan_loss or 0 <= args.nan_from <= it:
            loss = loss * float("nan")
        for o in optimizers:
            o.zero_grad()
        loss.backward()
        if not args.no_wrap:
            optimizers[0].report(loss)
        before = [g["params"][0].detach().clone() for g in param_groups]
        grads = [g["params"][0].grad.clone() for g in param_groups]
        for o in reversed(optimizers):
            try:
                o.step()
            except BaseException:
                if not args.swallow:
                    raise
        if log is not None:
            # plain SGD: p_new = p - lr * g, so the LR the update really used is recoverable
            eff = [
                float(((b - g["params"][0].detach()) * gr).sum() / (gr * gr).sum())
                for b, g, gr in zip(before, param_groups, grads)
            ]
            log.write(json.dumps({"step": it, "lr": eff}) + "\n")
            log.flush()
        for sched in scheds if args.sched != "epoch" or it % 5 == 4 else []:
            sched.step()  # "epoch": once every 5 steps, as a loop stepping it per epoch
        if args.sleep:
            time.sleep(args.sleep)


try:
    train()
finally:
    if args.finally_raise:
        raise ValueError("cleanup failed")
if args.save:
    saved = {"body": body.state_dict(), "head": head.state_dict()}
    if not args.weights_only:
        saved["optimizer"] = optimizers[0].state_dict()
    torch.save(saved, args.save)
print("finished", args.steps, "steps")
