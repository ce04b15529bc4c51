"""Run autowarm on HF transformers' ``run_clm_no_trainer.py`` (third-party) with a tiny GPT-2.

``examples/pytorch/language-modeling/run_clm_no_trainer.py``: an accelerate loop with
``get_scheduler``, ``accelerator.accumulate`` and ``accelerator.save_state``.

    # run_clm_no_trainer.py is not part of this repo: copy it from a transformers checkout
    mkdir -p /tmp/clmnt
    cp transformers/examples/pytorch/language-modeling/run_clm_no_trainer.py /tmp/clmnt/
    pip install datasets accelerate                       # the script imports both
    python scripts/try_hf_clm_no_trainer.py /tmp/clmnt    # patch, data, plain run, probe, check
    python scripts/try_hf_clm_no_trainer.py /tmp/clmnt --probe --seeds 0,1,2   # a search a seed
    python scripts/try_hf_clm_no_trainer.py /tmp/clmnt --runs --seeds 0,1,2    # full runs: a table

What it does in that folder (never in this repository):
1) ``run_clm_no_trainer.py`` gets the three lines an accelerate user adds (README, "accelerate"):
   ``import autowarm``, ``autowarm.wrap(...)`` around its ``torch.optim.AdamW`` and
   ``autowarm.report(optimizer, loss)`` after ``accelerator.backward(loss)``;
   ``run_clm_no_trainer_plain.py`` is the script without them (the full runs');
2) the data, tokenizer and model, with no download: ``train.txt`` (1.5 MB of the standard
   library's source) and ``tok/`` (a 512-token byte-level BPE) as ``scripts/try_hf_run_clm.py``
   makes them, ``valid.txt`` (other stdlib modules, 120 kB) and ``cfg/`` (a 2-layer, 64-wide
   GPT-2 config, ``--config_name ./cfg``: the script has no ``--config_overrides``);
3) one plain run of the patched script, one epoch (717 optimizer steps here) at its
   ``--learning_rate 5e-4`` with its default schedule (``get_scheduler("linear")``, no warmup),
   ``--checkpointing_steps 200`` into ``out/`` (``accelerator.save_state``: ``out/step_200`` ...),
   stands in for the user's earlier run; then ``autowarm probe --total-steps 717
   run_clm_no_trainer.py -- ...`` as a user would type it, offline (``HF_HUB_OFFLINE=1``), and a
   check that ``out/`` (bytes and mtimes), the inputs and the HF datasets cache under
   ``~/.cache/huggingface`` are unchanged afterwards. Run it again after removing ``.autowarm/``
   and ``autowarm.json`` for a fresh search. ``--accumulate`` (batch 8 x 2 micro-batches,
   ``accelerator.accumulate``) and ``--tracking`` (``--with_tracking --report_to tensorboard``)
   probe those variants instead, each its own study and ``autowarm-<variant>.json``. On two
   busy cores: the plain run 34 s, a search (20 trials of 71 steps) 1:40-1:55;
4) ``--probe``: one search per seed (``--seed S --out recipe-S.json``; any other
   ``recipe-*.json`` in the folder joins the table too);
5) ``--runs``: full one-epoch runs of ``run_clm_no_trainer_plain.py`` (one torch thread each, two
   at a time, no output folder): the script's own 5e-4 (linear, no warmup), each recipe found
   passed as the script's own flags (``--learning_rate --num_warmup_steps --lr_scheduler_type
   cosine``: transformers' warmup starts at 0, the recipe's at 1/(W+1) of the peak), and cosine
   with a 10 % warmup on a few peak LRs. Reported per schedule, mean +- s.e. over seeds (a seed is
   the init and the batch order): the script's own ``eval_loss`` on ``valid.txt`` after the epoch.
   Each result is cached under ``autowarm-runs/``, so an interrupted table resumes; 3 seeds of 11
   schedules took 19 min on two busy cores.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from try_hf_run_clm import data_and_tokenizer

SCRIPT = "run_clm_no_trainer.py"
PLAIN = "run_clm_no_trainer_plain.py"
PATCH = [  # (the script's line, what the user makes of it)
    ("import torch\n", "import torch\nimport autowarm\n"),
    ("    optimizer = torch.optim.AdamW(optimizer_grouped_parameters, lr=args.learning_rate)\n",
     "    optimizer = autowarm.wrap(\n"
     "        torch.optim.AdamW(optimizer_grouped_parameters, lr=args.learning_rate)\n"
     "    )\n"),
    ("                accelerator.backward(loss)\n",
     "                accelerator.backward(loss)\n"
     "                autowarm.report(optimizer, loss)\n"),
]  # fmt: skip
DATA = ["--config_name", "./cfg", "--tokenizer_name", "./tok", "--train_file", "train.txt",
        "--validation_file", "valid.txt", "--block_size", "64"]  # fmt: skip
#: the user's command: model, data, batch, their LR, one epoch, checkpoints into out/
ARGS = [*DATA, "--per_device_train_batch_size", "16", "--learning_rate", "5e-4",
        "--num_train_epochs", "1", "--checkpointing_steps", "200",
        "--output_dir", "out"]  # fmt: skip
VARIANTS = {
    "accumulate": ["--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "2"],
    "tracking": ["--with_tracking", "--report_to", "tensorboard"],
}
GRID_LRS = (1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2)


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def prepare(folder: Path) -> None:
    path = folder / SCRIPT
    src = path.read_text()
    if "autowarm" not in src:
        (folder / PLAIN).write_text(src)
        for old, new in PATCH:
            assert src.count(old) == 1, f"the script changed: update the patch for {old!r}"
            src = src.replace(old, new)
        path.write_text(src)
    assert (folder / PLAIN).exists(), f"{PLAIN} missing: copy the unpatched script there"
    data_and_tokenizer(folder)  # tok/ and train.txt
    if not (folder / "valid.txt").exists():
        names = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))
        text = ""
        for name in reversed(names):  # the last modules, not in train.txt (the first 1.5 MB)
            text += Path(name).read_text(encoding="utf-8", errors="ignore")
            if len(text) > 100_000:
                break
        (folder / "valid.txt").write_text(text)
    if not (folder / "cfg" / "config.json").exists():
        from transformers import GPT2Config

        GPT2Config(
            vocab_size=512, n_layer=2, n_embd=64, n_head=2, n_positions=128,
            bos_token_id=0, eos_token_id=0,
        ).save_pretrained(folder / "cfg")  # fmt: skip


def total_steps(folder: Path) -> int:
    """The user's earlier run (once): the patched script, outside a probe; its step count."""
    log = folder / "plain-run.log"
    if not (folder / "out").exists():
        cmd = [sys.executable, SCRIPT, *ARGS, "--seed", "0"]
        print("$", " ".join(["python", *cmd[1:]]), flush=True)
        t0 = time.monotonic()
        done = subprocess.run(cmd, cwd=folder, env=env(), capture_output=True, text=True)
        log.write_text(done.stdout + done.stderr)
        print(f"exit {done.returncode}, {time.monotonic() - t0:.1f} s", flush=True)
        done.check_returncode()
    found = re.search(r"Total optimization steps = (\d+)", log.read_text())
    assert found, f"no step count in {log}"
    return int(found.group(1))


def _digests(folder: Path) -> dict[str, str]:
    """The user's files: out/ (bytes and mtimes), the inputs, the script; the HF cache."""
    paths = [
        folder / "out",
        folder / "tok",
        folder / "cfg",
        folder / "train.txt",
        folder / "valid.txt",
        folder / SCRIPT,
        Path.home() / ".cache" / "huggingface",
    ]
    files = [q for p in paths for q in ([p] if p.is_file() else sorted(p.rglob("*")))]
    out: dict[str, str] = {}
    for p in files:
        if p.is_file():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
        if folder / "out" in p.parents:
            out[f"{p} mtime"] = str(p.stat().st_mtime_ns)
    return out


def probe(folder: Path, total: int, extra: list[str], variant: list[str] | None = None) -> int:
    """``autowarm probe`` as the user types it, and a check of their files around it."""
    cmd = ["autowarm", "probe", "--total-steps", str(total), *extra, SCRIPT, "--", *ARGS]
    cmd += variant or []
    before = _digests(folder)
    print("$", " ".join(cmd), flush=True)
    t0 = time.monotonic()
    code = subprocess.run(cmd, cwd=folder, env=env()).returncode
    print(f"exit {code}, {time.monotonic() - t0:.1f} s", flush=True)
    out = extra[extra.index("--out") + 1] if "--out" in extra else "autowarm.json"
    if (folder / out).exists():
        ev = json.loads((folder / out).read_text())["evidence"]
        print("script's scheduler:", ev.get("script_scheduler"))
        print("data:", ev.get("script_data"), "passes:", ev.get("data_passes"))
        cost = ev.get("cost") or {}
        print(f"outside the training steps: {cost.get('fixed_s_per_trial')} s per trial "
              f"(median), {cost.get('fixed_share')} of the trials' time")  # fmt: skip
    after = _digests(folder)
    changed = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
    print("the user's files and the HF cache:", "CHANGED: " + ", ".join(changed)
          if changed else f"unchanged ({len(after)} entries)")  # fmt: skip
    return code or bool(changed)


def full_run(folder: Path, flags: list[str], seed: int) -> float:
    """One full run of the unpatched script: its eval_loss on valid.txt after the epoch."""
    cmd = [sys.executable, PLAIN, *DATA, "--per_device_train_batch_size", "16",
           "--num_train_epochs", "1", "--seed", str(seed), *flags]  # fmt: skip
    done = subprocess.run(cmd, cwd=folder, env=env(), capture_output=True, text=True, check=True)
    found = re.findall(r"eval_loss: ([0-9.eE+-]+|nan|inf)", done.stdout + done.stderr)
    assert len(found) == 1, f"{len(found)} evaluations logged, not 1"
    return float(found[0])


def recipe_flags(path: Path, total: int) -> list[str]:
    """The recipe as the script's own flags (its get_scheduler: the closest transformers has)."""
    import warnings

    import autowarm

    recipe = autowarm.Recipe.load(path).for_run(total)
    with warnings.catch_warnings():  # transformers' warmup starts at 0, the recipe's at 1/(W+1)
        warnings.simplefilter("ignore")
        fields = recipe.training_args()
    assert not fields.get("lr_scheduler_kwargs"), "the script has no flag for scheduler kwargs"
    return [
        "--learning_rate",
        f"{fields['learning_rate']:g}",
        "--num_warmup_steps",
        str(fields["warmup_steps"]),
        "--lr_scheduler_type",
        fields["lr_scheduler_type"],
    ]


def runs(folder: Path, total: int, seeds: list[int], workers: int) -> None:
    if not (folder / "autowarm.json").exists():
        sys.exit("no autowarm.json: run the probe first")
    own = ["--learning_rate", "5e-4"]  # the user's; the script's defaults: linear, no warmup
    specs: dict[str, list[str]] = {"the script's own: 5e-4, linear, no warmup": own}
    for path in [folder / "autowarm.json", *sorted(folder.glob("recipe-*.json"))]:
        flags = recipe_flags(path, total)
        specs[f"autowarm ({path.name}): {flags[1]}, warmup {flags[3]}"] = flags
    for lr in GRID_LRS:
        specs[f"cosine {lr:g}, warmup 10%"] = [
            "--learning_rate",
            f"{lr:g}",
            "--lr_scheduler_type",
            "cosine",
            "--num_warmup_steps",
            str(total // 10),
        ]
    cache = folder / "autowarm-runs"
    cache.mkdir(exist_ok=True)

    def one(job: tuple[list[str], int]) -> float:
        flags, seed = job
        key = hashlib.sha1(json.dumps([flags, seed, total]).encode()).hexdigest()[:16]
        path = cache / f"{key}.json"
        if not path.exists():
            path.write_text(json.dumps(full_run(folder, flags, seed)))
        return float(json.loads(path.read_text()))

    jobs = [(flags, seed) for flags in specs.values() for seed in seeds]
    t0 = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, jobs))
    print(f"{len(jobs)} runs of {total} steps, {time.monotonic() - t0:.0f} s\n")
    print(f"| schedule ({len(seeds)} seeds) | eval loss after the epoch |\n|---|---|")
    for label, flags in specs.items():
        vals = [v for (f, _), v in zip(jobs, results) if f == flags]
        se = statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else float("nan")
        print(f"| {label} | {statistics.fmean(vals):.4f} ± {se:.4f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("folder", type=Path, help=f"a folder holding transformers' {SCRIPT}")
    p.add_argument("--probe", action="store_true", help="one search per seed: recipe-S.json")
    p.add_argument("--runs", action="store_true", help="full runs of the recipes and a grid")
    p.add_argument("--accumulate", action="store_true", help="probe with batch 8 x 2 micro-batches")
    p.add_argument("--tracking", action="store_true", help="probe with --with_tracking tensorboard")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--workers", type=int, default=2, help="full runs at a time")
    opts = p.parse_args(argv)
    folder = opts.folder.resolve()
    if not (folder / SCRIPT).exists():
        sys.exit(f"copy {SCRIPT} into {folder} first (see this script's docstring)")
    if shutil.which("autowarm") is None:
        sys.exit("autowarm is not on PATH: activate the venv it is installed in")
    prepare(folder)
    total = total_steps(folder)
    seeds = [int(s) for s in opts.seeds.split(",")]
    if opts.runs:
        runs(folder, total, seeds, opts.workers)
        return 0
    if opts.probe:
        codes = [probe(folder, total, ["--seed", str(s), "--out", f"recipe-{s}.json"])
                 for s in seeds]  # fmt: skip
        return max(codes)
    variant = next((v for v in VARIANTS if getattr(opts, v)), None)
    if variant is None:
        return probe(folder, total, [])
    return probe(folder, total, ["--out", f"autowarm-{variant}.json"], VARIANTS[variant])


if __name__ == "__main__":
    sys.exit(main())
