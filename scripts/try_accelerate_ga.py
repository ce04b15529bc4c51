"""Run autowarm on accelerate's own gradient-accumulation example for causal LMs, a third-party
script, with a tiny Llama from a config, and train its pick against the script's own LR.

    # the example is not part of this repo: copy it from an accelerate checkout
    mkdir /tmp/ac && cp accelerate/examples/by_feature/\
gradient_accumulation_for_autoregressive_models.py /tmp/ac/ga.py
    pip install datasets                                      # the example imports it
    python scripts/try_accelerate_ga.py /tmp/ac --probe --seeds 0,1,2   # three searches
    python scripts/try_accelerate_ga.py /tmp/ac --runs --seeds 0,1,2    # full runs: a table

What it does in that folder (never in this repository):
1) ``ga.py`` gets the two lines an accelerate user adds (``autowarm.wrap`` around its AdamW,
   ``autowarm.report(optimizer, loss)`` after each micro-batch's ``accelerator.backward``) and,
   so that nothing is downloaded, the tokenizer, the data and the model swapped for local ones:
   ``tok/`` (a 512-token byte-level BPE trained on the standard library's source, as
   ``scripts/try_hf_run_clm.py`` makes it), ``train.txt``/``valid.txt`` (that source, one line
   a sample; the script keeps its first 500) and ``cfg/`` (a 2-layer, 64-wide Llama config).
   The loop is the example's: manual accumulation (``--gradient_accumulation_steps 2``, the
   loss scaled by the token count of the whole accumulated batch), ``accelerator.
   clip_grad_norm_(..., 1.0)``, and transformers' ``get_constant_schedule`` prepared with the
   optimizer; its own LR is 2e-5 for 3 epochs (303 optimizer steps here). For the full runs
   only, a ``RECIPE`` variable swaps that scheduler for the recipe's and ``SEED`` sets the seed;
2) ``--probe``: ``autowarm probe --total-steps 303 --seed S ga.py -- --cpu
   --gradient_accumulation_steps 2`` per seed, as a user would type it, offline; each search's
   recipe is kept as ``recipe-S.json``;
3) ``--runs``: full runs (one torch thread each) of the script's own schedule, of each
   ``recipe-S.json``, and of cosine with a 10 % warmup on a few peak LRs. Reported per schedule,
   mean +- s.e. over seeds (a seed is the init and the batch order): the mean training loss of
   the last 20 steps. (The example's own evaluation prints the last *training* loss, not the
   validation one, so it is not used.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from try_hf_run_clm import data_and_tokenizer

STEPS = 303
ARGS = ["--cpu", "--gradient_accumulation_steps", "2"]
PATCH = [  # (the example's line, what it becomes)
    ("import torch\n", "import torch\nimport autowarm\n"),
    ("from transformers import AutoModelForCausalLM,",
     "from transformers import AutoConfig, AutoModelForCausalLM,"),
    ('AutoTokenizer.from_pretrained("HuggingFaceTB/SmolLM-360M")',
     'AutoTokenizer.from_pretrained("./tok")'),
    ('load_dataset("Salesforce/wikitext", "wikitext-2-v1")',
     'load_dataset("text", data_files={"train": "train.txt", "validation": "valid.txt"})'),
    ('AutoModelForCausalLM.from_pretrained("HuggingFaceTB/SmolLM-360M")',
     'AutoModelForCausalLM.from_config(AutoConfig.from_pretrained("./cfg"))'),
    ("optimizer = AdamW(params=model.parameters(), lr=lr)",
     "optimizer = autowarm.wrap(AdamW(params=model.parameters(), lr=lr))"),
    ("                    accelerator.backward(loss)\n",
     "                    accelerator.backward(loss)\n"
     "                    autowarm.report(optimizer, loss)\n"),
    # the full runs' harness, not a user's edit: the schedule and the seed from the environment
    ("    lr_scheduler = get_constant_schedule(\n        optimizer=optimizer,\n    )\n",
     "    lr_scheduler = (autowarm.Recipe.load(os.environ['RECIPE']).scheduler(optimizer)\n"
     "                    if os.environ.get('RECIPE') else get_constant_schedule(optimizer))\n"),
    ('"seed": 42,', '"seed": int(os.environ.get("SEED", 42)),'),
]  # fmt: skip


def prepare(folder: Path) -> None:
    path = folder / "ga.py"
    src = path.read_text()
    if "autowarm" not in src:
        for old, new in PATCH:
            assert src.count(old) == 1, f"the example changed: update the patch for {old!r}"
            src = src.replace(old, new)
        path.write_text(src)
    data_and_tokenizer(folder)  # tok/ and train.txt
    lines = (folder / "train.txt").read_text().splitlines()
    (folder / "valid.txt").write_text("\n".join(lines[-3000:]))
    from transformers import LlamaConfig

    LlamaConfig(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
    ).save_pretrained(folder / "cfg")  # fmt: skip


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def probe(folder: Path, seed: int) -> None:
    cmd = [sys.executable, "-m", "autowarm", "probe", "--total-steps", str(STEPS)]
    cmd += ["--seed", str(seed), "--out", f"recipe-{seed}.json", "ga.py", "--", *ARGS]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, cwd=folder, env=env(), check=True)


def run(folder: Path, recipe: str | None, seed: int) -> float:
    """One full run: the mean training loss of its last 20 optimizer steps."""
    extra = {"SEED": str(seed), **({"RECIPE": recipe} if recipe else {})}
    out = subprocess.run(
        [sys.executable, "ga.py", *ARGS], cwd=folder, env={**env(), **extra},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    losses = [float(x) for x in re.findall(r"train loss: ([0-9.eE+-]+|nan|inf)", out)]
    assert len(losses) == STEPS, f"{len(losses)} steps logged, not {STEPS}"
    return statistics.fmean(losses[-20:])


def cosine(folder: Path, lr: float) -> str:
    from autowarm import Recipe

    path = folder / f"cosine-{lr:g}.json"
    Recipe(lr, STEPS // 10, STEPS, decay="cosine").save(path)
    return path.name


def table(folder: Path, seeds: list[int], workers: int) -> None:
    schedules: dict[str, str | None] = {"script's own: 2e-5 constant": None}
    for seed in seeds:
        path = folder / f"recipe-{seed}.json"
        if path.exists():
            r = json.loads(path.read_text())
            label = f"autowarm seed {seed}: {r['peak_lr']:.3g}, warmup {r['warmup_steps']}"
            schedules[label] = path.name
    for lr in (3e-4, 1e-3, 3e-3, 1e-2, 3e-2):
        schedules[f"cosine {lr:g}, warmup 10%"] = cosine(folder, lr)
    jobs = [(label, recipe, seed) for label, recipe in schedules.items() for seed in seeds]
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda j: run(folder, j[1], j[2]), jobs))
    print(f"\n| schedule ({len(seeds)} seeds) | last-20-step training loss |\n|---|---|")
    for label in schedules:
        vals = [v for (lab, _, _), v in zip(jobs, results) if lab == label]
        se = statistics.stdev(vals) / len(vals) ** 0.5 if len(vals) > 1 else float("nan")
        print(f"| {label} | {statistics.fmean(vals):.4f} ± {se:.4f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where ga.py (the example, copied) is")
    parser.add_argument("--probe", action="store_true", help="one autowarm search per seed")
    parser.add_argument("--runs", action="store_true", help="full runs: the table")
    parser.add_argument("--seeds", default="0", help="comma-separated")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    prepare(args.folder)
    if args.probe:
        for seed in seeds:
            probe(args.folder, seed)
    if args.runs:
        table(args.folder, seeds, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
