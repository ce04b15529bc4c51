"""Quality benchmark: does autowarm's schedule train as well as brute force, on scripts it was
never tuned on?

    python scripts/bench_quality.py                          # the whole suite (~1.5 h on 2 cores)
    python scripts/bench_quality.py --split tuning           # only what design changes may use
    python scripts/bench_quality.py --workloads gru_lm,edge --workers 2
    python scripts/bench_quality.py --quick                  # a small grid, 1 seed: a smoke check

The suite (WORKLOADS below) is split in two. The **tuning set** is what design decisions may
be tuned on; the **held-out set** is never looked at while tuning: a change that helps the
tuning set and hurts the held-out set does not stay. Both are reported separately.

For every workload, on the same data and seeds:

1) oracle     full trainings over warmup (0, 5, 15, 30% of the run) x peak LR (6 or 7
              log-spaced values over the workload's box, under-training .. divergence) x 2
              seeds; the best mean is the oracle (the best of ~25 noisy means is flattered by
              its seeds, so regrets against it lean pessimistic);
2) default    the script's own default LR, no warmup;
3) lr-finder  an LR range test (scripts/lr_range_test.py: torch-lr-finder's exponential ramp
              1e-7..10 over 100 steps and its steepest-descent suggestion, run on the script
              itself) with the untuned warmup rule 2/(1-beta2) for Adam-family (capped at 30%
              of the run) or 5% of the run otherwise;
4) range/warm the same compute as autowarm spent on four LR range tests, one per warmup
              (0, 5, 15, 30% of the test); the warmup whose test reached the lowest smoothed
              loss, with that test's suggestion;
5) optuna-tpe plain Optuna TPE over *full* runs (training seed 0), as many as autowarm's mean
              cost buys (at least 1), in the oracle's box; one study per probe seed;
6) autowarm   `autowarm probe --json --seed K --total-steps FULL script` for each probe seed.

Every choice is trained in full on the grid's seeds (0, 1) and scored by its mean final eval loss;
regret = (loss - oracle) / oracle, with its standard error from the per-seed differences to
the oracle's cell (paired by seed). A run "diverged" when its eval loss is not finite or above
its initial training loss. Each full run is its own process (`--workers` at a time), cached
under scripts/.cache/quality/ by the script's hash and the run's arguments; probes are cached
by the script's and the autowarm package's hashes, so a rerun after changing autowarm redoes
only the probes and the runs of their new choices. Output: the tables on the terminal, a
markdown file and a PNG (each oracle grid as a heatmap with each method's choice).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from autowarm._io import atomic_write_bytes, atomic_write_text
from autowarm.probe._config import default_steps

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "scripts" / ".cache" / "quality"
GRID_SEEDS = (0, 1)
#: every choice is trained on these (paired with the oracle's cell on the same seeds)
EVAL_SEEDS = GRID_SEEDS
WARMUP_FRACTIONS = (0.0, 0.05, 0.15, 0.3)


_PARSE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Workload:
    name: str
    script: str  # relative to the repository root
    split: str  # "tuning" or "held-out"
    lr_box: tuple[float, float]  # the oracle's LR range: clear under-training .. divergence
    what: str
    steps: int | None = None  # None: the script's own DEFAULTS["steps"]
    n_lr: int = 6
    warmups: tuple[float, ...] = WARMUP_FRACTIONS
    grid_seeds: tuple[int, ...] = GRID_SEEDS
    probe_flags: tuple[str, ...] = ()  # script flags only its probes get
    same_runs_as: str | None = None  # a workload whose full runs (grid, baselines) are these
    # the full run's passes over its training data from the script's constants, as a user would
    # state them (autowarm probe --epochs); a replay with --state-epochs hands them to the rule
    epochs: float | None = None

    @property
    def cache(self) -> Path:
        return CACHE / (self.same_runs_as or self.name)

    @property
    def path(self) -> Path:
        return ROOT / self.script

    def defaults(self) -> dict[str, Any]:
        """The script's ``DEFAULTS = dict(...)``, read without importing it (one parse at a
        time: CPython 3.11's parser is not thread-safe, and the full runs' threads call this)."""
        with _PARSE_LOCK:
            tree = ast.parse(self.path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DEFAULTS":
                call = node.value
                assert isinstance(call, ast.Call)
                return {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        raise ValueError(f"{self.script} has no DEFAULTS = dict(...)")

    @property
    def full_steps(self) -> int:
        return self.steps or int(self.defaults()["steps"])

    def script_args(self) -> list[str]:
        """What every run and probe passes the script (its run length, where not its default)."""
        return ["--steps", str(self.full_steps)] if self.steps else []


# the LR boxes were measured by hand first (a one-seed sweep per script, warmup 0 and 10%)
WORKLOADS: tuple[Workload, ...] = (
    # -- tuning set
    Workload("charlm", "recipes/charlm/train.py", "tuning", (3e-4, 1e-1),
             "post-LN char Transformer, AdamW, clip 1.0", n_lr=7, epochs=1.42),
    Workload("digits_resnet", "recipes/digits_resnet/train.py", "tuning", (1e-2, 10.0),
             "BatchNorm ResNet, SGD momentum, batch 256", n_lr=7, epochs=178),
    Workload("deep_mlp", "recipes/deep_mlp/train.py", "tuning", (1e-4, 1e-1),
             "10-layer plain ReLU MLP, Adam", n_lr=7, epochs=25.6),
    Workload("long_mlp", "scripts/workloads/long_mlp.py", "tuning", (2e-4, 1e-1),
             "4x64 MLP, Adam, a long run (5,000 steps)", epochs=17.8),
    Workload("gpt_nano", "scripts/workloads/gpt_nano.py", "tuning", (3e-4, 1e-1),
             "pre-LN GPT in nanoGPT's style: manual LR, clip, 2 groups, accumulation", epochs=1.37),
    Workload("gru_lm", "scripts/workloads/gru_lm.py", "tuning", (1e-3, 3e-1),
             "GRU char LM, Adam, clip 1.0", epochs=1.14),
    Workload("sgd_mlp", "scripts/workloads/sgd_mlp.py", "tuning", (1e-2, 1.0),
             "plain ReLU MLP, SGD momentum: NaN a few x above the best LR", n_lr=7, epochs=1.6),
    # -- held-out set: never looked at while tuning
    Workload("finetune", "scripts/workloads/finetune.py", "held-out", (1e-4, 3e-2),
             "MLP pretrained in the script on task A, fine-tuned on B (300 examples), AdamW",
             epochs=43),
    Workload("hf_trainer", "scripts/workloads/hf_trainer.py", "held-out", (3e-4, 1e-1),
             "tiny GPT-2 (from a config) through the HF Trainer, clip 1.0", epochs=0.853),
    Workload("lightning_mlp", "scripts/workloads/lightning_mlp.py", "held-out", (3e-4, 1e-1),
             "MLP on digits through lightning.Trainer, AdamW, clip 1.0", epochs=9.85),
    Workload("adamw_shallow", "scripts/workloads/adamw_shallow.py", "held-out", (1e-3, 3e-1),
             "LayerNorm MLP, AdamW: the best warmup is ~0", epochs=0.96),
    Workload("edge", "scripts/workloads/edge.py", "held-out", (0.01, 3.0),
             "linear regression, plain SGD: the best LR sits just under divergence", epochs=4),
    Workload("edge_long", "scripts/workloads/edge.py", "held-out", (0.03, 3.0),
             "edge.py as a long run (5,000 steps), coarse grid", steps=5000, n_lr=5,
             warmups=(0.0, 0.05, 0.3), epochs=40),
    # added after the rules above were measured (the sgd_mlp stop), run once the horizon
    # rule was fixed: a held-out pair no design decision had seen
    Workload("softmax_sgd", "scripts/workloads/softmax_sgd.py", "held-out", (3e-3, 1.0),
             "softmax regression, plain SGD, features scaled 1..10", epochs=1.6),
    Workload("cnn_digits", "scripts/workloads/cnn_digits.py", "held-out", (1e-3, 3e-1),
             "small CNN without normalization on 8x8 digits, Adam, shifts", epochs=17),
    # added to judge the at-edge rung (--rung1 with --rung-length), a rule drawn from the edge
    # pair's rows: two more scripts whose best LR sits at a divergence edge, unseen before
    Workload("lsq_digits", "scripts/workloads/lsq_digits.py", "held-out", (3e-5, 1e-2),
             "least squares on raw digit pixels, plain SGD: NaN just above the best LR",
             epochs=21.3),
    Workload("tanh_mse", "scripts/workloads/tanh_mse.py", "held-out", (1e-2, 10.0),
             "tanh MLP, MSE on one-hot digits, plain SGD (edge of stability)", epochs=42.7),
    # added to judge a smaller margin (--rule MARGIN=...), a rule drawn from the seen edge-type
    # scripts: two more edge-type scripts and one transformer, unseen before
    Workload("poly_sgdm", "scripts/workloads/poly_sgdm.py", "held-out", (0.01, 1.2),
             "degree-10 polynomial regression, SGD momentum 0.9: NaN just above the best LR",
             n_lr=9, epochs=8),
    Workload("deeplinear_sgd", "scripts/workloads/deeplinear_sgd.py", "held-out", (0.02, 3.0),
             "4-layer deep linear net, plain SGD: progressive sharpening near the edge",
             n_lr=9, epochs=8),
    Workload("vit_digits", "scripts/workloads/vit_digits.py", "held-out", (3e-4, 1e-1),
             "tiny pre-LN ViT on 8x8 digits, AdamW, no clipping", epochs=17.1),
    # added, unseen, to check the flat_ranking doubt drawn from vit_digits' searches
    Workload("seqcls_postln", "scripts/workloads/seqcls_postln.py", "held-out", (1e-3, 1e-1),
             "post-LN Transformer encoder classifying token sequences, AdamW, no clipping",
             epochs=6.4),
    # added, unseen, to judge the noise-based horizon rule (HORIZON_RULE=noise), drawn from the
    # held-out rows of finetune, lightning_mlp and cnn_digits: three small-data scripts
    Workload("cancer_mlp", "scripts/workloads/cancer_mlp.py", "held-out", (1e-4, 1.0),
             "2x128 MLP on the breast-cancer table (419 rows), AdamW", epochs=38),
    Workload("diabetes_sgdm", "scripts/workloads/diabetes_sgdm.py", "held-out", (1e-3, 1.0),
             "2x64 MLP regression on the diabetes table (342 rows), SGD momentum, MSE",
             epochs=46.8),
    Workload("fewshot_digits", "scripts/workloads/fewshot_digits.py", "held-out", (3e-3, 3.0),
             "MLP with dropout on 150 digits, SGD Nesterov, weight decay", epochs=85),
    # added, unseen, to judge the noise rule read from the training loss where the probes are
    # scored on validation (NOISE_OF=training); each is probed with --score-on-val only
    Workload("wine_mlp", "scripts/workloads/wine_mlp.py", "held-out", (1e-4, 3.0),
             "2x64 MLP on the wine table (120 rows), AdamW", epochs=53),
    Workload("hf_smalldata", "scripts/workloads/hf_smalldata.py", "held-out", (1e-4, 3e-2),
             "tiny BERT classifier through the HF Trainer on 400 noisy-label examples"),
    Workload("smallbatch_reg", "scripts/workloads/smallbatch_reg.py", "held-out", (1e-4, 0.3),
             "MLP regression at batch 4 on 40,000 fresh rows, Adam: noisy, not overfitting",
             epochs=0.15),
    # added, unseen, to judge the gap rule (GAP_RULE=1), drawn from the rows above; each is
    # probed with --score-on-val only
    Workload("digits_small", "scripts/workloads/digits_small.py", "held-out", (1e-4, 0.3),
             "2x256 MLP on 250 digits, AdamW"),
    Workload("hf_lm_small", "scripts/workloads/hf_lm_small.py", "held-out", (1e-4, 0.1),
             "hf_trainer's tiny GPT-2 on 24,000 characters (9 epochs)"),
    Workload("lightning_small", "scripts/workloads/lightning_small.py", "held-out", (1e-4, 0.1),
             "lightning_mlp's fit on 250 digits"),
    # added, unseen, to judge the gap rule's exponent (HORIZON_EXPONENT_GAP=1.0), drawn from
    # the seen *_val rows; each is probed with --score-on-val only
    Workload("moons_mlp", "scripts/workloads/moons_mlp.py", "held-out", (1e-4, 0.3),
             "2x128 MLP on 200 noisy two-moons points, Adam", n_lr=7),
    Workload("friedman_sgdm", "scripts/workloads/friedman_sgdm.py", "held-out", (1e-3, 0.5),
             "2x128 MLP regression on 120 noisy Friedman #1 rows, SGD momentum", n_lr=7),
    Workload("chargru_small", "scripts/workloads/chargru_small.py", "held-out", (1e-4, 0.3),
             "GRU char LM on 16,000 characters of textwrap.py, AdamW", n_lr=7),
    # added, unseen, to judge the noise rule's exponent (HORIZON_EXPONENT_NOISY=1.0 / 0.75),
    # drawn from the seen training-loss rows of the noisy small-data scripts
    Workload("synth_cls_mlp", "scripts/workloads/synth_cls_mlp.py", "held-out", (3e-5, 0.3),
             "2x256 MLP on 400 rows of a noisy synthetic table, Adam, batch 16", n_lr=7, epochs=20),
    Workload("cnn_fewdigits", "scripts/workloads/cnn_fewdigits.py", "held-out", (1e-4, 0.3),
             "small CNN on 200 digits, AdamW, no augmentation", n_lr=7, epochs=64),
    Workload("chartf_small", "scripts/workloads/chartf_small.py", "held-out", (3e-5, 0.1),
             "2-layer pre-LN char Transformer on 16,000 characters of calendar.py, AdamW",
             n_lr=7, epochs=25.7),
    # added, unseen, to judge the gap rule's split (GAP_SPLIT=0.12), drawn from the val-scored
    # rows of the two above; each is probed with --score-on-val only
    Workload("friedman3_adamw", "scripts/workloads/friedman3_adamw.py", "held-out", (1e-4, 1.0),
             "3x128 MLP regression on 300 noisy Friedman #3 rows, AdamW", n_lr=7),
    Workload("bncnn_smalldigits", "scripts/workloads/bncnn_smalldigits.py", "held-out",
             (3e-4, 1.0), "BatchNorm CNN on 300 digits, SGD momentum", n_lr=7),
    Workload("lstm_order", "scripts/workloads/lstm_order.py", "held-out", (1e-4, 0.3),
             "LSTM on 600 token sequences (which token first), 10 % flipped labels, Adam",
             n_lr=7),
    # added, unseen, to judge a fixed 10 % warmup (WARMUP_RULE=prior, WARMUP_PRIOR_WEIGHT=1000),
    # drawn from the replay of every stored training-loss search: two scripts where the warmup
    # matters by construction and one where the data are fresh every batch
    Workload("postln_lm", "scripts/workloads/postln_lm.py", "held-out", (1e-4, 3e-2),
             "3-layer post-LN char Transformer LM on 600,000 characters, Adam, no clipping",
             n_lr=7, epochs=0.683),
    Workload("rmsprop_cnn", "scripts/workloads/rmsprop_cnn.py", "held-out", (3e-4, 0.2),
             "GELU CNN on 1,497 digits, RMSprop (no bias correction)", n_lr=7, epochs=13),
    Workload("conv1d_series", "scripts/workloads/conv1d_series.py", "held-out", (1e-4, 0.1),
             "dilated 1-D CNN forecasting fresh synthetic waves, AdamW, MSE", n_lr=7, epochs=1),
    # added, unseen, to judge the edge rung (--edge-rung 4), drawn from the seen edge-type rows:
    # two scripts that sit at a stability edge by construction and one far below its edge
    Workload("matfact_sgd", "scripts/workloads/matfact_sgd.py", "held-out", (0.1, 10.0),
             "rank-8 factorisation completing an 80x80 matrix, plain SGD: LR 10 wants a long "
             "warmup", n_lr=9, epochs=12.5),
    Workload("teacher_relu_sgd", "scripts/workloads/teacher_relu_sgd.py", "held-out",
             (0.01, 1.0), "ReLU student of a random ReLU teacher, MSE, plain SGD, batch 16",
             n_lr=9, epochs=2.67),
    Workload("ridge_nesterov", "scripts/workloads/ridge_nesterov.py", "held-out", (1e-4, 0.03),
             "linear regression on diabetes' pairwise products, Nesterov 0.9, 342 examples",
             n_lr=9, epochs=46.8),
    # added, unseen, to judge the near-best LR centre (--rule LR_RULE=near), drawn from the
    # replay of every stored training-loss search: three common kinds of script
    Workload("lstm_charlm", "scripts/workloads/lstm_charlm.py", "held-out", (1e-3, 0.3),
             "1-layer LSTM char LM on argparse.py, Adam, clip 1.0", n_lr=7, epochs=6.41),
    Workload("mlp_autoenc", "scripts/workloads/mlp_autoenc.py", "held-out", (3e-4, 0.1),
             "MLP autoencoder of the digits through a bottleneck of 8, AdamW, MSE", n_lr=7,
             epochs=21.3),
    Workload("adagrad_bow", "scripts/workloads/adagrad_bow.py", "held-out", (3e-3, 3.0),
             "EmbeddingBag classifier of fresh synthetic documents, Adagrad", n_lr=9, epochs=1),
    # added, unseen, to judge the noise rule gated by the full run's passes (--rule
    # PASSES_RULE=1): small-batch scripts fed by a DataLoader (the probe reads their passes),
    # each under 20 passes
    Workload("mlp_charlm", "scripts/workloads/mlp_charlm.py", "held-out", (3e-3, 1.0),
             "Bengio-style MLP char LM, 4-char context, on difflib.py, SGD momentum, batch 32, "
             "1.9 passes", n_lr=9),
    Workload("gru_huber", "scripts/workloads/gru_huber.py", "held-out", (3e-4, 1.0),
             "GRU regressing generated two-sine series, Huber loss, NAdam, batch 16, 6 passes",
             n_lr=9),
    Workload("resmlp_radam", "scripts/workloads/resmlp_radam.py", "held-out", (3e-4, 1.0),
             "pre-LN residual MLP with dropout on a noisy-label table, RAdam, batch 16, "
             "12.8 passes", n_lr=9),
    # added, unseen, to look again at the passes gate (PASSES_RULE) on both sides of 20 passes:
    # small-batch scripts fed by a DataLoader
    Workload("textcnn_lines", "scripts/workloads/textcnn_lines.py", "held-out", (1e-3, 1.0),
             "char TextCNN telling which of 5 stdlib modules a line is from, SGD Nesterov, "
             "batch 32, 4.8 passes", n_lr=9),
    Workload("vae_digits", "scripts/workloads/vae_digits.py", "held-out", (3e-4, 1.0),
             "VAE of the 8x8 digits, 8-d latent, Adamax, batch 16, 16 passes", n_lr=9),
    Workload("gnn_graphs", "scripts/workloads/gnn_graphs.py", "held-out", (3e-4, 1.0),
             "message-passing GNN regressing a noisy energy of 400 random graphs, AdamW, "
             "batch 16, 40 passes", n_lr=9),
    # added, unseen, for the registered test of FRESH_RULE (bench_quality_variants.md): three
    # DataLoader scripts under 20 passes, written and boxed before that rule was thought of
    Workload("tabembed_sgdm", "scripts/workloads/tabembed_sgdm.py", "held-out", (1e-3, 1.0),
             "entity embeddings + MLP on a generated table, SGD momentum, batch 32, a long run "
             "(3,000 steps), 8 passes", n_lr=9),
    Workload("seq2seq_reverse", "scripts/workloads/seq2seq_reverse.py", "held-out",
             (3e-4, 0.3), "GRU encoder-decoder reversing digit strings, Adam, clip 1.0, "
             "batch 32, 4 passes", n_lr=9),
    Workload("unet_denoise", "scripts/workloads/unet_denoise.py", "held-out", (1e-4, 1.0),
             "two-level GroupNorm U-Net denoising the digits, AdamW, batch 32, 19.7 passes",
             n_lr=9),
)  # fmt: skip


def scored_on_val(w: Workload) -> Workload:
    """``w`` with its probes scored on the validation loss (the script's ``--score-on-val``:
    ``autowarm.score_with``), its full runs -- grid, baselines -- shared with ``w``."""
    return dataclasses.replace(
        w, name=f"{w.name}_val", probe_flags=("--score-on-val",), same_runs_as=w.name,
        what=f"{w.name}, its probes scored on the validation loss (autowarm.score_with)",
    )  # fmt: skip


# the small-data scripts whose training loss the full run overfits: the noisy_loss doubt's
# fix (autowarm.score_with on held-out data), checked on each
WORKLOADS += tuple(
    scored_on_val(w)
    for w in WORKLOADS
    if w.name in ("finetune", "cancer_mlp", "diabetes_sgdm", "fewshot_digits", "wine_mlp",
                  "smallbatch_reg", "digits_small", "moons_mlp", "friedman_sgdm",
                  "chargru_small", "synth_cls_mlp", "chartf_small", "friedman3_adamw",
                  "bncnn_smalldigits", "lstm_order")
)  # fmt: skip
# the framework callbacks score on the trainer's own eval set by themselves: the HF Trainer's
# eval_dataset, Lightning's validation loop (the scripts' --score-on-val hands them one)
WORKLOADS += tuple(
    scored_on_val(w)
    for w in WORKLOADS
    if w.name in ("hf_trainer", "lightning_mlp", "hf_smalldata", "hf_lm_small", "lightning_small")
)


# -----------------------------------------------------------------------------------------
# full runs: one subprocess each, cached


def file_hash(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def autowarm_hash() -> str:
    return file_hash(*sorted((ROOT / "autowarm").rglob("*.py")))


def clean_env() -> dict[str, str]:
    """No AUTOWARM_* variable leaks into a run or a probe."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AUTOWARM_")}


@dataclass(frozen=True)
class Run:
    workload: Workload
    lr: float
    warmup: int
    seed: int
    min_lr_ratio: float = 0.0

    def args(self) -> list[str]:
        return [
            "--steps", str(self.workload.full_steps), "--lr", repr(self.lr),
            "--warmup", str(self.warmup), "--seed", str(self.seed),
            "--min-lr-ratio", repr(self.min_lr_ratio),
        ]  # fmt: skip

    def cache_path(self) -> Path:
        key = hashlib.sha256(" ".join([file_hash(self.workload.path), *self.args()]).encode())
        return self.workload.cache / f"{key.hexdigest()[:20]}.json"


def run_full(run: Run) -> dict[str, Any]:
    """Train once (or read the cache). Returns the script's metrics JSON."""
    path = run.cache_path()
    if path.exists():
        return json.loads(path.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "metrics.json"
        proc = subprocess.run(
            [sys.executable, str(run.workload.path), *run.args(), "--metrics-out", str(out)],
            cwd=tmp, env=clean_env(), capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        if proc.returncode != 0 or not out.exists():
            tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"{run.workload.name} {' '.join(run.args())} failed: {tail[0]}")
        metrics = json.loads(out.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(metrics))
    return metrics


def run_many(runs: list[Run], workers: int, console: Console, label: str) -> list[dict]:
    todo = sum(not r.cache_path().exists() for r in runs)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(run_full, runs))
    if todo:
        console.print(
            f"  {label}: {todo} new runs of {len(runs)} in {time.perf_counter() - t0:.0f} s"
        )
    return results


def eval_loss(m: dict) -> float:
    v = m["final_eval_loss"]
    return v if v is not None and math.isfinite(v) else math.inf


# -----------------------------------------------------------------------------------------
# LR range tests (scripts/lr_range_test.py on the script itself), cached


def range_test(w: Workload, iters: int, warmup_frac: float = 0.0) -> dict[str, Any]:
    args = ["--start", "1e-7", "--end", "10", "--iters", str(iters),
            "--warmup-frac", repr(warmup_frac)]  # fmt: skip
    tester = ROOT / "scripts" / "lr_range_test.py"
    key = " ".join([file_hash(w.path, tester), *args, *w.script_args()])
    path = w.cache / f"range-{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"
    if path.exists():
        return json.loads(path.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(tester), *args, "--out", f"{tmp}/rt.json", str(w.path),
               *w.script_args()]  # fmt: skip
        proc = subprocess.run(cmd, cwd=tmp, env=clean_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"range test on {w.name} failed: {tail}")
        doc = json.loads(Path(f"{tmp}/rt.json").read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(doc))
    return doc


def untuned_warmup(betas: list[float] | None, steps: int) -> int:
    """2/(1-beta2) steps for Adam-family (Ma & Yarats 2019), capped at 30% of the run (the
    rule gives 2,000 steps for beta2=0.999, longer than most of these runs); 5% otherwise."""
    if not betas:
        return round(0.05 * steps)
    return min(round(2 / (1 - betas[1])), round(0.3 * steps))


def fallback_lr(doc: dict[str, Any], default: float) -> float:
    """A range test that found no steepest point (it diverged at once) suggests the script's
    default, as a user would fall back to it."""
    return float(doc["suggestion"]) if doc.get("suggestion") else default


def range_per_warmup(w: Workload, budget_steps: float, default_lr: float) -> tuple[Method, str]:
    """autowarm's compute spent on one range test per warmup fraction."""
    iters = max(50, int(budget_steps // len(WARMUP_FRACTIONS)))
    tests = [(f, range_test(w, iters, f)) for f in WARMUP_FRACTIONS]
    best = lambda d: min((y for y in d["smoothed"] if y is not None), default=math.inf)  # noqa: E731
    frac, doc = min(tests, key=lambda t: best(t[1]))
    cost = sum(d["steps"] for _, d in tests)
    wall = sum(d["wall_s"] for _, d in tests)
    choice = (fallback_lr(doc, default_lr), round(frac * w.full_steps))
    return Method("range test per warmup", [choice], cost, wall), f"{iters}-step tests"


# -----------------------------------------------------------------------------------------
# autowarm probe (cached by script + autowarm source + arguments)


def probe_key(w: Workload, seed: int, extra: list[str]) -> str:
    args = ["--seed", str(seed), "--total-steps", str(w.full_steps), *extra, *w.script_args()]
    args += w.probe_flags
    return hashlib.sha256(" ".join([file_hash(w.path), "--json", *args]).encode()).hexdigest()[:20]


def _fill(arg: str, w: Workload) -> str:
    """``{steps:F}`` in a ``--probe-args`` value: F times the workload's default probe length,
    in steps (e.g. ``--max-warmup {steps:0.25}``)."""
    return re.sub(
        r"\{steps:([0-9.]+)\}",
        lambda m: str(int(float(m.group(1)) * default_steps(w.full_steps))),
        arg,
    )


def probe(w: Workload, seed: int, extra: list[str], *, replay: bool = False) -> dict[str, Any]:
    """``autowarm probe --json`` on the workload (cached by the script, the arguments and the
    autowarm source). ``replay``: the newest cached search for these arguments, whatever
    autowarm made it, its recipe recommended again from its trials by the current code -- a
    change to the recommendation rule is then measured on the very same trials."""
    extra = [_fill(arg, w) for arg in extra]
    key = probe_key(w, seed, extra)
    path = w.cache / f"probe-{key}-{autowarm_hash()}.json"
    if replay:
        found = sorted(w.cache.glob(f"probe-{key}-*.json"), key=os.path.getmtime)
        if found:
            stated = w.epochs if STATE_EPOCHS else None
            return replayed(json.loads(found[-1].read_text()), stated)
    if path.exists():
        return json.loads(path.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cmd = probe_command(w, seed, extra, tmp)
        proc = subprocess.run(cmd, cwd=tmp, env=clean_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"autowarm probe on {w.name} (seed {seed}): {tail}")
        doc = json.loads(proc.stdout)
        doc["bench_wall_s"] = time.perf_counter() - t0
        doc["records"] = full_records(f"sqlite:///{tmp}/probe.db", doc.get("study"))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(doc))
    return doc


def probe_command(w: Workload, seed: int, extra: list[str], tmp: str) -> list[str]:
    """``autowarm probe --json`` on the workload, its study and recipe kept in ``tmp``."""
    return [sys.executable, "-m", "autowarm", "probe", "--json", "--seed", str(seed),
            "--total-steps", str(w.full_steps), *extra,
            "--storage", f"sqlite:///{tmp}/probe.db", "--out", f"{tmp}/recipe.json",
            str(w.path), *w.script_args(), *w.probe_flags]  # fmt: skip


def full_records(storage: str, study: str | None) -> list[dict[str, Any]]:
    """Every trial as the study holds it, with what ``--json`` leaves out (its loss curve,
    score noise, initial loss, event counts): a replay then has what a signal drawn from the
    trials' curves needs (the searches stored before this have the summary only)."""
    import optuna

    from autowarm.probe._record import records

    if study is None:
        return []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return [
        dataclasses.asdict(r) for r in records(optuna.load_study(study_name=study, storage=storage))
    ]


def set_rule(spec: str) -> None:
    """``--rule NAME=VALUE,...``: set the recommendation's module constants for a replay."""
    from autowarm.probe import _recommend

    for item in filter(None, spec.split(",")):
        name, value = item.split("=", 1)
        if not hasattr(_recommend, name):
            raise SystemExit(f"--rule: autowarm.probe._recommend has no {name!r}.")
        old = getattr(_recommend, name)
        setattr(_recommend, name, type(old)(value) if not isinstance(old, bool) else value == "1")


#: --state-epochs: replays hand each workload's ``epochs`` to the rule, as ``--epochs`` would
STATE_EPOCHS = False


def replayed(doc: dict[str, Any], epochs: float | None = None) -> dict[str, Any]:
    """``doc`` with its recipe recommended again from its trials by this autowarm (``epochs``:
    the full run's passes as ``--epochs`` would state them, where the search read none)."""
    from autowarm.probe import _recommend
    from autowarm.probe._doubts import doubts
    from autowarm.probe._record import TrialRecord

    fields = ("number", "peak_lr", "warmup_steps", "status", "score", "steps", "failure")
    if doc.get("records"):  # the whole trials, curves included
        records = [TrialRecord(**r) for r in doc["records"]]
    else:
        records = [TrialRecord(**{k: t.get(k) for k in fields}) for t in doc["trials"]]
    old = doc["recipe"]
    ev = old["evidence"]
    keys = ("lr_range", "script_lr", "cost", "script_data", "data_passes")
    extra = {k: ev[k] for k in keys if k in ev}
    if extra.get("data_passes") is None and epochs is not None:
        extra["data_passes"] = epochs
    # the module's names, so --rule MARGIN=3 or HORIZON_EXPONENT=0 reach this replay too (the
    # horizon exponent by the rule, which reads HORIZON_EXPONENT[_AT_EDGE] and EDGE_REACH)
    recipe = _recommend.recommend(
        records, probe_steps=int(ev["probe_steps"]), total_steps=old["total_steps"],
        decay=old["decay"], min_lr_ratio=float(old["min_lr_ratio"]),
        margin=_recommend.MARGIN, horizon_exponent=None,
        warmup_transfer=_recommend.WARMUP_TRANSFER,
        extra_evidence=extra,
    )  # fmt: skip
    from autowarm.probe._config import ProbeConfig

    warmup_max = ProbeConfig("", steps=int(ev["probe_steps"])).warmup_max  # its default cap
    recipe.evidence["doubts"] = doubts(
        records, recipe.evidence, lr_range=tuple(ev["lr_range"]), warmup_max=warmup_max
    )
    return {**doc, "recipe": recipe.to_dict()}


# -----------------------------------------------------------------------------------------
# one workload


@dataclass
class Method:
    name: str
    choices: list[tuple[float, int]]  # (peak LR, warmup) -- one per search
    cost_steps: float = 0.0  # tuning cost in optimizer steps (mean over searches)
    tune_wall_s: float = 0.0
    min_lr_ratio: float = 0.0
    losses: list[float] = field(default_factory=list)  # choice-major x EVAL_SEEDS
    regret: float = math.nan  # %
    regret_se: float = math.nan  # % points, paired by seed with the oracle's cell
    diverged: int = 0
    runs: int = 0
    note: str = ""


@dataclass
class Grid:
    lrs: list[float]
    warmups: list[int]
    mean: np.ndarray  # [warmup, lr] mean eval loss over the grid seeds
    best: tuple[int, int]  # the oracle's cell: [warmup index, LR index]
    wall_s: float
    runs: int
    by_run: dict[Run, dict]


def oracle_grid(w: Workload, opts: argparse.Namespace, console: Console) -> Grid:
    steps = w.full_steps
    n_lr, fracs, seeds = (5, (0.0, 0.15), (0,)) if opts.quick else (w.n_lr, w.warmups, w.grid_seeds)
    lrs = [float(f"{v:.3g}") for v in np.geomspace(*w.lr_box, n_lr)]
    warmups = [round(f * steps) for f in fracs]
    runs = [Run(w, lr, wu, s) for wu in warmups for lr in lrs for s in seeds]
    results = run_many(runs, opts.workers, console, "oracle grid")
    by_run = dict(zip(runs, results))
    mean = np.array(
        [[np.mean([eval_loss(by_run[Run(w, lr, wu, s)]) for s in seeds]) for lr in lrs]
         for wu in warmups]
    )  # fmt: skip
    bi, bj = np.unravel_index(np.argmin(mean), mean.shape)
    best = (int(bi), int(bj))
    wall = sum(m["wall_s"] for m in by_run.values())
    return Grid(lrs, warmups, mean, best, wall, len(by_run), by_run)


def baselines(
    w: Workload, grid: Grid, budget: float, opts: argparse.Namespace, console: Console
) -> list[Method]:
    steps, default_lr = w.full_steps, float(w.defaults()["lr"])
    finder = range_test(w, 100)
    rule = untuned_warmup((finder.get("optimizer") or {}).get("betas"), steps)
    per_warm, note = range_per_warmup(w, budget, default_lr)
    per_warm.note = note
    tpe = tpe_method(w, grid, max(1, round(budget / steps)), opts, console)
    return [
        Method("default LR, no warmup", [(default_lr, 0)]),
        Method("lr-finder + rule warmup", [(fallback_lr(finder, default_lr), rule)],
               finder["steps"], finder["wall_s"]),
        per_warm,
        tpe,
    ]  # fmt: skip


def autowarm_method(
    w: Workload, opts: argparse.Namespace, console: Console
) -> tuple[Method, list[dict]]:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(min(opts.workers, len(opts.probe_seeds))) as pool:
        probes = list(
            pool.map(lambda k: probe(w, k, opts.probe_args, replay=opts.replay), opts.probe_seeds)
        )
    console.print(f"  autowarm probes: {time.perf_counter() - t0:.0f} s")
    recipes = [p["recipe"] for p in probes]
    method = Method(
        "autowarm",
        [(float(r["peak_lr"]), int(r["warmup_steps"])) for r in recipes],
        float(np.mean([p["cost"]["optimizer_steps"] for p in probes])),
        float(np.mean([p["cost"]["wall_s"] for p in probes])),
        min_lr_ratio=float(recipes[0].get("min_lr_ratio", 0.0)),
    )
    decays = {r.get("decay") for r in recipes}
    if decays != {"cosine"}:
        method.note = f"recipe decay {decays} != the scripts' cosine"
    return method, probes


#: the simulated second rung: LRs at the first rung's pick x {1/RUNG_STEP, 1, RUNG_STEP}
RUNG_STEP = 1.7


def tail_score(m: dict) -> float:
    """The probe's own score (:func:`autowarm.probe._score.score`) on a run's logged training
    losses; a diverged run scores worst."""
    from autowarm.probe._score import score as probe_score

    losses = m["train_losses"]
    value = probe_score(losses, len(losses))
    return value if math.isfinite(value) and not m["diverged"] else math.inf


def vertex(lrs: list[float], scores: list[float]) -> float:
    """The minimum of the parabola through three (log LR, score) points, inside their range;
    the best point when the three are not convex."""
    x, y = np.log(lrs), np.asarray(scores)
    if not np.all(np.isfinite(y)):
        return lrs[int(np.argmin(y))]
    a, b, _ = np.polyfit(x, y, 2)
    if a <= 0:
        return lrs[int(np.argmin(y))]
    return float(math.exp(min(max(-b / (2 * a), x[0]), x[-1])))


def rung2_methods(
    w: Workload, probes: list[dict], aw: Method, opts: argparse.Namespace, console: Console
) -> list[Method]:
    """Multi-fidelity, simulated on the cached searches: the first ``--rung1`` trials of each
    search (what a shorter search would have recommended, replayed by the current rule), then
    the script run at ``--rung-length`` x the probe length at that pick's LR x {1/RUNG_STEP, 1,
    RUNG_STEP} (same warmup fraction, seed = the probe's), ranked by the probe's own score
    (training loss), the parabola's vertex taken. Carried to the full run three ways: as it is,
    "+ trend" with the measured trend from 1x to Kx the probe length carried on, "x rule" with
    the search's horizon rule from Kx the probe length. A fourth, "at edge", takes the rung
    (x rule) only where the first trials' pick sits near a stability edge they found (the
    horizon rule's at-edge branch) and the whole search's pick (``aw``) elsewhere."""
    k_len = opts.rung_length
    plain, trend, rule, cost = [], [], [], []
    at_edge, edge_cost = [], []
    for k, doc, whole in zip(opts.probe_seeds, probes, aw.choices):
        first = sorted(doc["trials"], key=lambda t: t["number"])[: opts.rung1]
        ev = replayed({**doc, "trials": first})["recipe"]["evidence"]
        probe_steps, c = int(ev["probe_steps"]), float(ev["probe_peak_lr"])
        frac = int(ev["probe_warmup_steps"]) / probe_steps
        wk = dataclasses.replace(w, steps=k_len * probe_steps)
        lrs = [c / RUNG_STEP, c, c * RUNG_STEP]
        runs = [Run(wk, lr, round(frac * k_len * probe_steps), k) for lr in lrs]
        lr2 = vertex(
            lrs,
            [tail_score(m) for m in run_many(runs, opts.workers, console, "rung 2")],
        )
        ratio = w.full_steps / (k_len * probe_steps)
        factor = min(max((lr2 / c) ** (math.log(ratio) / math.log(k_len)), 1 / 3), 3.0)
        warmup = round(frac * w.full_steps)
        plain.append((lr2, warmup))
        trend.append((lr2 * factor, warmup))
        rule.append((lr2 * ratio ** -float(ev["horizon_exponent"]), warmup))
        cost.append(sum(t.get("steps") or 0 for t in first) + 3 * k_len * probe_steps)
        edge = bool(ev["near_stability_edge"])
        console.print(f"  search {k}: first {opts.rung1} trials' pick near an edge: {edge}")
        at_edge.append(rule[-1] if edge else whole)
        edge_cost.append(cost[-1] if edge else aw.cost_steps)
    spent = float(np.mean(cost))
    rung = f"autowarm + rung at {k_len}x"
    return [Method(f"{rung} (sim.)", plain, spent),
            Method(f"{rung} + trend (sim.)", trend, spent),
            Method(f"{rung} x rule (sim.)", rule, spent),
            Method(f"{rung} x rule at edge only (sim.)", at_edge,
                   float(np.mean(edge_cost)))]  # fmt: skip


#: the edge rung's LRs: the pick's probe LR x 2 ** (i / 3), i = 0, 1, 2 (its boundary is ~2x)
EDGE_RUNG_LRS = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))


def edge_rung_method(
    w: Workload, probes: list[dict], aw: Method, opts: argparse.Namespace, console: Console
) -> Method:
    """The edge rung, simulated on each whole search (registered in
    bench_quality_variants.md before its fresh scripts ran, which did not adopt it): where the
    pick sits near a stability edge the probes found (``near_stability_edge``), the margin, not
    the probes' ranking, set its LR. So the script is run ``--edge-rung`` x the probe length
    (same warmup fraction, the probe's seed) at the pick's probe LR x EDGE_RUNG_LRS -- up to
    0.8 of the found edge -- and the one with the best probe score among those that neither
    diverged nor scored non-finite scales the pick (x 1, 1.26 or 1.59). Elsewhere the pick is
    unchanged."""
    k_len = opts.edge_rung
    choices, cost = [], []
    for k, doc, whole in zip(opts.probe_seeds, probes, aw.choices):
        ev = doc["recipe"]["evidence"]
        spent = float(doc["cost"]["optimizer_steps"])
        if not ev.get("near_stability_edge"):
            choices.append(whole)
            cost.append(spent)
            continue
        probe_steps, c = int(ev["probe_steps"]), float(ev["probe_peak_lr"])
        frac = int(ev["probe_warmup_steps"]) / probe_steps
        wk = dataclasses.replace(w, steps=k_len * probe_steps)
        runs = [Run(wk, c * f, round(frac * k_len * probe_steps), k) for f in EDGE_RUNG_LRS]
        scores = [tail_score(m) for m in run_many(runs, opts.workers, console, "edge rung")]
        best = int(np.argmin(scores)) if any(math.isfinite(v) for v in scores) else 0
        console.print(f"  search {k}: at an edge; rung scores {scores}: x{EDGE_RUNG_LRS[best]:.2f}")
        choices.append((whole[0] * EDGE_RUNG_LRS[best], whole[1]))
        cost.append(spent + len(runs) * k_len * probe_steps)
    return Method(f"autowarm + edge rung at {k_len}x (sim.)", choices, float(np.mean(cost)))


def score(w: Workload, grid: Grid, m: Method, opts: argparse.Namespace, console: Console) -> None:
    """Train every choice of ``m`` on the evaluation seeds; its regret, paired by seed."""
    seeds = (0,) if opts.quick else EVAL_SEEDS
    runs = [Run(w, lr, wu, s, m.min_lr_ratio) for lr, wu in m.choices for s in seeds]
    results = run_many(runs, opts.workers, console, m.name)
    m.losses = [eval_loss(r) for r in results]
    bi, bj = grid.best
    oracle = np.array([eval_loss(grid.by_run[Run(w, grid.lrs[bj], grid.warmups[bi], s)])
                       for s in seeds])  # fmt: skip
    per_seed = np.array(m.losses).reshape(len(m.choices), len(seeds)).mean(axis=0)
    diff = 100 * (per_seed - oracle) / oracle.mean()
    m.regret = float(diff.mean())
    m.regret_se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else math.nan
    m.diverged = sum(bool(r["diverged"]) for r in results)
    m.runs = len(results)


def bench_workload(w: Workload, opts: argparse.Namespace, console: Console) -> dict[str, Any]:
    steps = w.full_steps
    console.rule(f"[bold]{w.name}[/] ({w.split}; {steps} steps; {w.what})")
    # 1) the oracle grid
    grid = oracle_grid(w, opts, console)
    bi, bj = grid.best
    oracle = Method("oracle grid", [(grid.lrs[bj], grid.warmups[bi])], grid.runs * steps,
                    grid.wall_s)  # fmt: skip
    # 2) autowarm first: the compute-matched baselines get what it spent
    methods: list[Method] = [oracle]
    probes: list[dict] = []
    budget = 2.0 * steps
    if not opts.skip_autowarm:
        aw, probes = autowarm_method(w, opts, console)
        budget = aw.cost_steps
    methods += baselines(w, grid, budget, opts, console)
    if probes:
        methods.append(aw)
        if opts.rung1:
            methods += rung2_methods(w, probes, aw, opts, console)
        if opts.edge_rung:
            methods.append(edge_rung_method(w, probes, aw, opts, console))
    # 3) every choice trained in full on the evaluation seeds
    for m in methods:
        score(w, grid, m, opts, console)
    full_wall = float(np.median([m["wall_s"] for m in grid.by_run.values()]))
    return {
        "workload": w, "steps": steps, "grid": grid, "oracle": float(np.mean(oracle.losses)),
        "methods": methods, "probes": probes, "full_wall": full_wall,
        "horizons": horizon_study(w, grid),
    }  # fmt: skip


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (no ties expected in float losses)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def horizon_study(w: Workload, grid: Grid) -> list[dict[str, Any]]:
    """Short-horizon bias, measured on the oracle grid for free: what would a probe that runs
    the *first h steps of the full schedule* pick? For each h (a fraction of the run), the
    training loss around step h (mean of the logged losses over the last 20% of the first h
    steps, mean over the grid seeds) ranks the grid cells; we report its argmin, that cell's
    full-run regret, and the rank correlation between the short-horizon loss and the final
    eval loss over all cells."""
    out = []
    steps = w.full_steps
    every = max(1, steps // 100)  # the scripts log every (steps // 100) steps
    for frac in (0.1, 0.2, 0.3, 0.5):
        h = int(frac * steps)
        short = np.zeros_like(grid.mean)
        for i, wu in enumerate(grid.warmups):
            for j, lr in enumerate(grid.lrs):
                vals = []
                for s in w.grid_seeds:
                    m = grid.by_run.get(Run(w, lr, wu, s))
                    logged = np.array(m["train_losses"] if m else [], dtype=float)
                    tl = logged[int(0.8 * h) // every : max(1, h // every)]
                    vals.append(np.mean(tl) if tl.size and np.all(np.isfinite(tl)) else np.inf)
                short[i, j] = np.mean(vals)
        si, sj = np.unravel_index(np.argmin(short), short.shape)
        ok = np.isfinite(short) & np.isfinite(grid.mean)
        rho = spearman(short[ok], grid.mean[ok]) if ok.sum() > 2 else float("nan")
        best = grid.mean.min()
        out.append({
            "h": h, "lr": grid.lrs[sj], "warmup": grid.warmups[si],
            "regret": 100 * (grid.mean[si, sj] - best) / best, "rho": float(rho),
        })  # fmt: skip
    return out


def tpe_method(
    w: Workload, grid: Grid, budget: int, opts: argparse.Namespace, console: Console
) -> Method:
    """One TPE study per sampler seed, ``budget`` full runs each (training seed 0), its best
    trial being that seed's choice. With ~2 full runs TPE is still in its random start-up, so
    one study is one random draw: it compares with autowarm's mean over as many searches."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def study(k: int) -> tuple[tuple[float, int], float]:
        st = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=k))
        wall = 0.0
        for _ in range(budget):
            trial = st.ask()
            lr = trial.suggest_float("lr", grid.lrs[0], grid.lrs[-1], log=True)
            wu = trial.suggest_int("warmup", 0, grid.warmups[-1])
            m = run_full(Run(w, float(f"{lr:.4g}"), wu, 0))
            wall += m["wall_s"]
            # a diverged run is a bad score, not a FAILed trial (which would teach TPE nothing)
            bad = m["diverged"] or not math.isfinite(eval_loss(m))
            st.tell(trial, m["initial_loss"] if bad else min(eval_loss(m), m["initial_loss"]))
        best = st.best_params
        return (float(f"{best['lr']:.4g}"), int(best["warmup"])), wall

    t0 = time.perf_counter()
    with ThreadPoolExecutor(opts.workers) as pool:  # the studies are independent
        choices, walls = zip(*pool.map(study, opts.probe_seeds))
    console.print(f"  optuna TPE: {time.perf_counter() - t0:.0f} s")
    return Method(
        "optuna TPE (full runs)", list(choices), budget * w.full_steps,
        sum(walls) / len(choices), note=f"{budget} full runs per study",
    )  # fmt: skip


# -----------------------------------------------------------------------------------------
# output


def fmt_regret(regret: float, se: float) -> str:
    return f"{regret:+.2f}%" + (f" ± {se:.2f}" if math.isfinite(se) and se > 0 else "")


def spread(values: list[float]) -> float:
    return max(values) / max(min(values), 1e-12) if values else math.nan


def method_rows(res: dict[str, Any]) -> list[list[str]]:
    rows = []
    for m in res["methods"]:
        lrs, ws = sorted(lr for lr, _ in m.choices), sorted(wu for _, wu in m.choices)
        lr_s = f"{lrs[0]:.3g}" if len(set(lrs)) == 1 else f"{lrs[0]:.3g}..{lrs[-1]:.3g}"
        w_s = f"{ws[0]}" if len(set(ws)) == 1 else f"{ws[0]}..{ws[-1]}"
        rows.append([
            res["workload"].name, m.name, lr_s, w_s, f"{np.mean(m.losses):.4f}",
            fmt_regret(m.regret, m.regret_se), f"{m.diverged}/{m.runs}",
            f"{m.cost_steps:,.0f}", f"{m.cost_steps / res['steps']:.2f}",
            f"{m.tune_wall_s / res['full_wall']:.2f}" if m.tune_wall_s else "0",
        ])  # fmt: skip
    return rows


METHOD_COLS = ["workload", "method", "peak LR", "warmup", "eval loss", "regret ± SE", "div.",
               "cost (steps)", "full-run equiv.", "wall, full-run equiv."]  # fmt: skip
SUMMARY_COLS = ["workload", "steps", "oracle LR / warmup", "autowarm regret ± SE",
                "worst search", "best baseline", "cost (full runs)", "wall (full runs)",
                "LR spread", "warmup spread", "diverged"]  # fmt: skip


def summary_row(res: dict[str, Any]) -> list[str]:
    methods = {m.name: m for m in res["methods"]}
    oracle, aw = methods["oracle grid"], methods.get("autowarm")
    base = min(
        (m for m in res["methods"][1:] if not m.name.startswith("autowarm")),
        key=lambda m: m.regret,
    )
    row = [res["workload"].name, str(res["steps"]),
           f"{oracle.choices[0][0]:.3g} / {oracle.choices[0][1]}"]  # fmt: skip
    if aw is None:
        return row + ["-"] * 3 + [f"{base.name} {fmt_regret(base.regret, base.regret_se)}"]
    per = np.array(aw.losses).reshape(len(aw.choices), -1).mean(axis=1)
    worst = 100 * (per.max() - res["oracle"]) / res["oracle"]
    return [
        *row, fmt_regret(aw.regret, aw.regret_se), f"{worst:+.2f}%",
        f"{base.name}: {fmt_regret(base.regret, base.regret_se)}",
        f"{aw.cost_steps / res['steps']:.2f}", f"{aw.tune_wall_s / res['full_wall']:.2f}",
        f"{spread([lr for lr, _ in aw.choices]):.2f}x",
        f"{spread([max(1, wu) for _, wu in aw.choices]):.2f}x", f"{aw.diverged}/{aw.runs}",
    ]  # fmt: skip


def md_table(cols: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)] + [
        "| " + " | ".join(r) + " |" for r in rows
    ]


def print_table(console: Console, title: str, cols: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for col in cols:
        table.add_column(col, justify="left" if col in ("workload", "method") else "right")
    for r in rows:
        table.add_row(*r)
    console.print(table)


def set_summary(split: str, results: list[dict]) -> str:
    """Mean and worst autowarm regret over one split."""
    regrets = [m.regret for r in results for m in r["methods"] if m.name == "autowarm"]
    if not regrets:
        return f"- {split} set: no autowarm rows"
    return (
        f"- {split} set ({len(regrets)} workloads): autowarm's mean regret "
        f"{np.mean(regrets):+.2f}%, worst {max(regrets):+.2f}%"
    )


def render(results: list[dict], console: Console) -> str:
    md: list[str] = []
    for split in ("tuning", "held-out"):
        part = [r for r in results if r["workload"].split == split]
        if not part:
            continue
        rows = [summary_row(r) for r in part]
        print_table(console, f"{split} set: autowarm against the oracle", SUMMARY_COLS, rows)
        console.print(set_summary(split, part))
        md += [f"### {split} set", "", *md_table(SUMMARY_COLS, rows), "",
               set_summary(split, part), ""]  # fmt: skip
    rows = [row for r in results for row in method_rows(r)]
    seeds = ", ".join(map(str, EVAL_SEEDS))
    print_table(
        console, f"every method (mean over its searches and seeds {seeds})", METHOD_COLS, rows
    )
    md += ["### every method", "", *md_table(METHOD_COLS, rows), "", *notes(results)]
    return "\n".join(md) + "\n"


def notes(results: list[dict]) -> list[str]:
    out = []
    for res in results:  # a mean over several choices hides how far the worst one was
        for m in res["methods"]:
            if len(m.choices) > 1:
                per = np.array(m.losses).reshape(len(m.choices), -1).mean(axis=1)
                regrets = 100 * (per - res["oracle"]) / res["oracle"]
                ranked = sorted(zip(regrets, m.choices))
                out.append(
                    f"- {res['workload'].name} {m.name}: regret per search (peak LR/warmup) "
                    + ", ".join(f"{r:+.2f}% ({lr:.3g}/{wu})" for r, (lr, wu) in ranked)
                )
        parts = [
            f"h={d['h']}: LR {d['lr']:.3g}, warmup {d['warmup']}, regret {d['regret']:+.1f}%, "
            f"rho {d['rho']:.2f}"
            for d in res["horizons"]
        ]
        out.append(f"- {res['workload'].name} short-horizon argmin: " + "; ".join(parts))
    return out


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {
        "oracle grid": ("*", "white"), "default LR, no warmup": ("s", "black"),
        "lr-finder + rule warmup": ("^", "magenta"), "range test per warmup": ("v", "cyan"),
        "optuna TPE (full runs)": ("D", "orange"), "autowarm": ("o", "red"),
    }  # fmt: skip
    cols = min(4, len(results))
    rows = math.ceil(len(results) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.8 * rows), squeeze=False)
    for ax in axes.flat[len(results) :]:
        ax.axis("off")
    for ax, res in zip(axes.flat, results):
        grid = res["grid"]
        mean = np.where(np.isfinite(grid.mean), grid.mean, np.nan)
        im = ax.imshow(mean, origin="lower", aspect="auto", cmap="viridis_r",
                       vmin=np.nanmin(mean), vmax=float(np.nanpercentile(mean, 75)))  # fmt: skip
        ax.set_xticks(range(len(grid.lrs)), [f"{v:.2g}" for v in grid.lrs], rotation=60)
        ax.set_yticks(range(len(grid.warmups)), [str(wu) for wu in grid.warmups])
        ax.set_title(f"{res['workload'].name} ({res['workload'].split}, {res['steps']} steps)")
        fig.colorbar(im, ax=ax)
        loglrs = np.log(grid.lrs)
        for m in res["methods"]:
            mk, colour = markers.get(m.name, ("x", "grey"))
            for k, (lr, wu) in enumerate(m.choices):
                x = np.interp(math.log(lr), loglrs, range(len(loglrs)), left=-0.4,
                              right=len(loglrs) - 0.6)  # fmt: skip
                y = np.interp(wu, grid.warmups, range(len(grid.warmups)))
                ax.scatter([x], [y], marker=mk, s=90, c=colour, edgecolors="black",
                           label=m.name if k == 0 else None, zorder=3)  # fmt: skip
    axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [w.name for w in WORKLOADS]
    p.add_argument("--workloads", default=",".join(names), help="comma-separated names")
    p.add_argument("--split", choices=("tuning", "held-out"), help="only this set")
    p.add_argument("--workers", type=int, default=2, help="full runs in parallel")
    p.add_argument("--quick", action="store_true", help="5 LRs x 2 warmups x 1 seed grid")
    p.add_argument("--probe-seeds", type=lambda s: [int(v) for v in s.split(",")],
                   default=[0, 1, 2])  # fmt: skip
    p.add_argument("--probe-args", default="", help="extra `autowarm probe` flags, quoted")
    p.add_argument("--skip-autowarm", action="store_true", help="oracle and baselines only")
    p.add_argument(
        "--replay",
        action="store_true",
        help="recommend again from the newest cached searches' trials (a rule change, measured "
        "on the same trials) instead of probing anew with this autowarm",
    )
    p.add_argument(
        "--rule",
        default="",
        help="with --replay: recommendation-rule settings for this replay, NAME=VALUE,... "
        "(module constants of autowarm.probe._recommend, e.g. WARMUP_RULE=centre)",
    )
    p.add_argument(
        "--state-epochs",
        action="store_true",
        help="with --replay: hand each workload's passes over its data (Workload.epochs) to the "
        "rule where its search read none, as `autowarm probe --epochs` would",
    )
    p.add_argument(
        "--rung1",
        type=int,
        default=0,
        help="also simulate multi-fidelity: the first N trials of each search, then a rung of "
        "3 runs at --rung-length x the probe length (N=14 keeps the 20-trial budget at 2x, "
        "N=8 at 4x)",
    )
    p.add_argument("--rung-length", type=int, default=2, help="with --rung1: the rung's length")
    p.add_argument(
        "--edge-rung",
        type=int,
        default=0,
        help="also simulate the edge rung: where a search's pick sits near a stability edge, 3 "
        "runs at this many x the probe length at its LR x 1, 1.26, 1.59 (see edge_rung_method)",
    )
    p.add_argument("--md", type=Path, default=ROOT / "scripts" / "bench_quality.md")
    p.add_argument("--png", type=Path, default=ROOT / "scripts" / "bench_quality.png")
    opts = p.parse_args(argv)
    opts.probe_args = opts.probe_args.split()
    chosen = [n.strip() for n in opts.workloads.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in names]
    if unknown:
        p.error(f"--workloads: unknown workload {unknown[0]!r}; known: {', '.join(names)}.")
    by_name = {w.name: w for w in WORKLOADS}  # in the order given: cheap ones first, say
    opts.chosen = [by_name[n] for n in chosen if opts.split in (None, by_name[n].split)]
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    set_rule(opts.rule)
    global STATE_EPOCHS
    STATE_EPOCHS = opts.state_epochs
    console = Console(width=max(150, Console().width))  # the tables need ~140 columns
    t0 = time.perf_counter()
    results = [bench_workload(w, opts, console) for w in opts.chosen]
    md = render(results, console)
    cmd = "python scripts/bench_quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = (
        f"Command: `{cmd.strip()}` ({time.perf_counter() - t0:.0f} s for this invocation; runs "
        "and probes already in scripts/.cache/quality were reused). Wall times in full-run "
        "equivalents divide a method's tuning wall seconds by the median full run's, both "
        "measured on 2 CPU cores shared with other jobs.\n\n" + md
    )
    atomic_write_text(opts.md, md)
    plot(results, opts.png)
    console.print(f"wrote {opts.md} and {opts.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
