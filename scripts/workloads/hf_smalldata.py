"""HF transformers: a tiny BERT classifier trained by ``transformers.Trainer`` on 400 examples.

Run it (several seconds on one CPU core, a few of them importing transformers; no download --
the model is built from a config, the data are generated from a seed):

    python scripts/workloads/hf_smalldata.py
    autowarm probe scripts/workloads/hf_smalldata.py --score-on-val  # pick warmup + peak LR

Flags: --steps N --lr X --warmup W --min-lr-ratio R --seed S --metrics-out FILE, and
--score-on-val: the Trainer gets the validation set as its ``eval_dataset`` (``eval_strategy``
stays "no"), and the callback scores probe trials by ``evaluate()``'s ``eval_loss``.

Why this workload: the small-data fine-tune-sized job an HF user runs with an eval set -- a
2-layer ``BertForSequenceClassification`` from a config, ``TrainingArguments(learning_rate=...,
warmup_steps=..., lr_scheduler_type="linear")`` (the Trainer's default decay), weight decay
0.01, ``max_grad_norm=1.0`` -- on 400 random token sequences labelled by whether token 1 occurs
more often than token 2, with 10 % of the labels flipped: 400 steps of 16 (16 epochs) can
memorise them. 1,000 more sequences (clean labels) are the validation set. Added unseen,
probed with --score-on-val only (the callback's own validation scoring), to judge the noise rule
read from the training loss in searches scored on validation (``NOISE_OF``,
scripts/bench_quality_variants.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", module="transformers")
warnings.filterwarnings("ignore", module="accelerate")

import torch  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.utils import logging as hf_logging  # noqa: E402

from autowarm.integrations.hf import AutowarmCallback  # noqa: E402

# -----------------------------------------------------------------------------------------
# 0) defaults: what a typical user writes. The Trainer's default LR (5e-5), no warmup.
DEFAULTS = dict(steps=400, lr=5e-5, warmup=0, min_lr_ratio=0.0, seed=0)
BATCH = 16
VOCAB, LENGTH = 16, 24
N_TRAIN, N_VAL = 400, 1000
FLIP = 0.1  # the fraction of training labels flipped


class Sequences(torch.utils.data.Dataset):
    def __init__(self, ids: torch.Tensor, labels: torch.Tensor) -> None:
        self.ids, self.labels = ids, labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def build_data() -> tuple[Sequences, Sequences]:
    """Random sequences; label 1 where token 1 occurs more often than token 2 (ties: 0). The
    same data for every seed (seed 1234); 10 % of the training labels flipped."""
    gen = torch.Generator().manual_seed(1234)
    ids = torch.randint(VOCAB, (N_TRAIN + N_VAL, LENGTH), generator=gen)
    labels = ((ids == 1).sum(1) > (ids == 2).sum(1)).long()
    flip = torch.rand(N_TRAIN, generator=gen) < FLIP
    labels[:N_TRAIN] = torch.where(flip, 1 - labels[:N_TRAIN], labels[:N_TRAIN])
    return Sequences(ids[:N_TRAIN], labels[:N_TRAIN]), Sequences(ids[N_TRAIN:], labels[N_TRAIN:])


def build_model(seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=LENGTH,
        num_labels=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertForSequenceClassification(config)


class LossLog(TrainerCallback):
    """Collects the training losses the Trainer logs (every ``logging_steps`` steps)."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_log(self, args, state, control, logs=None, **_):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))


@torch.no_grad()
def evaluate(model: BertForSequenceClassification, val: Sequences) -> float:
    """Cross-entropy over the whole validation set."""
    model.eval()
    loss = model(input_ids=val.ids, labels=val.labels).loss.item()
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
    hf_logging.set_verbosity_error()
    t0 = time.perf_counter()
    train, val = build_data()
    model = build_model(args.seed)

    # 2) the Trainer builds AdamW and the schedule; the callback wraps that optimizer (under
    #    `autowarm probe` the wrapper owns the LR and ends the run at the probe length)
    schedule = dict(lr_scheduler_type="linear")  # --min-lr-ratio: not this schedule's
    loss_log = LossLog()
    with tempfile.TemporaryDirectory(prefix="hf_smalldata_") as out:
        training_args = TrainingArguments(
            output_dir=out,
            max_steps=args.steps,
            learning_rate=args.lr,
            warmup_steps=args.warmup,
            **schedule,
            per_device_train_batch_size=BATCH,
            per_device_eval_batch_size=64,
            max_grad_norm=1.0,
            weight_decay=0.01,
            logging_steps=max(1, args.steps // 100),
            logging_first_step=True,
            report_to=[],
            save_strategy="no",
            eval_strategy="no",
            use_cpu=True,
            seed=args.seed,  # data order
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model,
            args=training_args,
            train_dataset=train,
            eval_dataset=val if args.score_on_val else None,  # never evaluated by the run
            callbacks=[AutowarmCallback(), loss_log],
        )
        trainer.remove_callback(PrinterCallback)  # it prints every log line
        trainer.train()

    # 3) evaluate and report; "diverged" = nonfinite or ended above where it started
    final = evaluate(model, val)
    initial = loss_log.losses[0] if loss_log.losses else None
    diverged = not math.isfinite(final) or final > (initial or math.inf)
    metrics = {
        "final_eval_loss": final,
        "diverged": diverged,
        "initial_loss": initial,
        "steps": args.steps,
        "lr": args.lr,
        "warmup": args.warmup,
        "seed": args.seed,
        "train_losses": loss_log.losses,
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
