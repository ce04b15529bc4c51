"""Run autowarm on the HF Trainer example ``run_clm.py`` (transformers'
``examples/pytorch/language-modeling``), a third-party script, with a tiny GPT-2 from a config.

    # run_clm.py is not part of this repo: copy it from a transformers checkout
    cp transformers/examples/pytorch/language-modeling/run_clm.py /tmp/hfclm/
    pip install datasets evaluate                 # run_clm.py imports both
    python scripts/try_hf_run_clm.py /tmp/hfclm   # patch, data, tokenizer, probe, check
    python scripts/try_hf_run_clm.py /tmp/hfclm --runs --seeds 0,1,2   # full runs: a table

What it does in that folder (never in this repository):
1) ``run_clm.py`` gets the two lines an HF user adds: ``from autowarm.integrations.hf import
   AutowarmCallback`` and ``callbacks=[AutowarmCallback()]`` in its ``Trainer(...)``;
2) the data and the tokenizer, with no download: ``train.txt`` is 1.5 MB of the standard
   library's own source, ``tok/`` a 512-token byte-level BPE trained on it and saved with
   ``save_pretrained`` (``--tokenizer_name ./tok``);
3) one plain run of 30 steps (``--output_dir out``, a checkpoint every 20 steps) stands in for
   the user's earlier run; then ``autowarm probe --trials 6 --total-steps 200 run_clm.py ...``
   as a user would type it, offline (``HF_HUB_OFFLINE=1``), and a check that ``out/`` and the
   HF datasets cache under ``~/.cache/huggingface`` are byte-identical afterwards (the cache is
   warm from the plain run; a cold one a trial fills as the script's own run would: a cache is
   the library's, shared by every run, see ``autowarm/probe/_scratch.py``). The report
   ends with the user's command carrying the schedule as ``TrainingArguments`` flags; last,
   what each trial paid outside its training steps (the recipe's ``evidence.cost``). Run it
   again after removing ``.autowarm/`` and ``autowarm.json`` for a fresh search;
4) ``--runs``: full 200-step runs of the unpatched script (one torch thread each, no
   checkpoints): its own LR 5e-4 with the Trainer's defaults (linear decay, no warmup),
   ``autowarm.json``'s recipe as the report's flags, and cosine with a 10 % or 30 % warmup on
   a few peak LRs; reported per schedule, mean +- s.e. over seeds (a seed is the init and the batch
   order), the training loss of the last 20 steps (the mean of the last two logged; 200
   steps of 16 x 64 tokens see a third of ``train.txt``, so it is a held-out loss as well).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from pathlib import Path

CALLBACK = "        data_collator=default_data_collator,\n"
MODEL = ["--model_type", "gpt2",
         "--config_overrides", "n_layer=2,n_embd=64,n_head=2,n_positions=128,vocab_size=512",
         "--tokenizer_name", "./tok", "--train_file", "train.txt", "--do_train",
         "--per_device_train_batch_size", "16", "--block_size", "64",
         "--report_to", "none"]  # fmt: skip
#: the user's command: the model and data, and their run's output, checkpoints and LR
ARGS = [*MODEL, "--output_dir", "out", "--save_steps", "20", "--learning_rate", "5e-4"]


def patch(folder: Path) -> None:
    path = folder / "run_clm.py"
    src = path.read_text()
    if "AutowarmCallback" in src:
        return
    assert src.count(CALLBACK) == 1, "run_clm.py's Trainer(...) changed: update the patch"
    src = src.replace("import transformers\n", "import transformers\n"
                      "from autowarm.integrations.hf import AutowarmCallback\n", 1)  # fmt: skip
    src = src.replace(CALLBACK, CALLBACK + "        callbacks=[AutowarmCallback()],\n")
    path.write_text(src)


def data_and_tokenizer(folder: Path) -> None:
    if (folder / "tok" / "tokenizer.json").exists():
        return
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    text = ""
    for name in sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py"))):
        text += Path(name).read_text(encoding="utf-8", errors="ignore")
        if len(text) > 1_500_000:
            break
    (folder / "train.txt").write_text(text)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=["<|endoftext|>"], initial_alphabet=alphabet
    )
    tok.train([str(folder / "train.txt")], trainer)
    eos = "<|endoftext|>"
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=eos, bos_token=eos, model_max_length=128
    )
    fast.save_pretrained(str(folder / "tok"))


GRID_LRS = (2.5e-3, 5e-3, 1e-2, 2e-2, 4e-2)
GRID_WARMUPS = (20, 60)  # 10 % and 30 % of the run
TOTAL = 200


def full_run(folder: Path, flags: list[str], seed: int) -> float:
    """One run of the unpatched script; the training loss of its last 20 steps."""
    plain = folder / "run_clm_plain.py"
    src = (folder / "run_clm.py").read_text()
    src = src.replace("from autowarm.integrations.hf import AutowarmCallback\n", "")
    plain.write_text(src.replace("        callbacks=[AutowarmCallback()],\n", ""))
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, str(plain), *MODEL, "--output_dir", out,
               "--save_strategy", "no", "--logging_steps", "10", "--seed", str(seed),
               "--max_steps", str(TOTAL), *flags]  # fmt: skip
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "OMP_NUM_THREADS": "1"}  # fmt: skip
        subprocess.run(cmd, cwd=folder, env=env, check=True, capture_output=True)
        state = json.loads((Path(out) / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    return statistics.fmean(losses[-2:])


def runs(folder: Path, seeds: list[int]) -> None:
    import autowarm

    recipe = autowarm.Recipe.load(folder / "autowarm.json").for_run(TOTAL)
    with warnings.catch_warnings():  # its warmup starts at 0, the recipe's at 1/(W+1)
        warnings.simplefilter("ignore")
        fields = recipe.training_args()
    mine = [f"--{k}={json.dumps(v) if isinstance(v, dict) else v}" for k, v in fields.items()]
    cosine = ["--lr_scheduler_type", "cosine"]
    specs = [("the script's own (linear, no warmup)", ["--learning_rate", "5e-4"]),
             ("**autowarm**", mine)] + [
        ("cosine", ["--learning_rate", str(lr), "--warmup_steps", str(w), *cosine])
        for w in GRID_WARMUPS for lr in GRID_LRS]  # fmt: skip
    cache = folder / "autowarm-runs"
    cache.mkdir(exist_ok=True)
    print("| schedule | flags | loss, last 20 steps |\n|---|---|---|")
    for name, flags in specs:
        losses = []
        for seed in seeds:
            path = cache / (
                hashlib.sha1(json.dumps([flags, seed]).encode()).hexdigest()[:16] + ".json"
            )
            if not path.exists():
                path.write_text(json.dumps(full_run(folder, flags, seed)))
            losses.append(json.loads(path.read_text()))
        se = statistics.stdev(losses) / math.sqrt(len(losses)) if len(losses) > 1 else 0.0
        print(f"| {name} | `{' '.join(flags)}` | {statistics.fmean(losses):.4f} ± {se:.4f} |")


def _digests(*folders: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="a folder holding transformers' run_clm.py")
    p.add_argument("--runs", action="store_true", help="full runs of the recipe and a grid")
    p.add_argument("--seeds", default="0,1,2")
    opts = p.parse_args(argv)
    folder = opts.folder.resolve()
    patch(folder)
    data_and_tokenizer(folder)
    if opts.runs:
        runs(folder, [int(s) for s in opts.seeds.split(",")])
        return 0
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    if not (folder / "out").exists():  # the user's earlier run
        plain = [sys.executable, "run_clm.py", *ARGS, "--max_steps", "30"]
        subprocess.run(plain, cwd=folder, env=env, check=True, capture_output=True)
    watched = (folder / "out", Path.home() / ".cache" / "huggingface")
    before = _digests(*watched)
    probe = ["autowarm", "probe", "--trials", "6", "--total-steps", "200", "run_clm.py", *ARGS,
             "--max_steps", "200"]  # fmt: skip
    code = subprocess.run(probe, cwd=folder, env=env).returncode
    if (folder / "autowarm.json").exists():  # what each trial paid outside its steps
        cost = json.loads((folder / "autowarm.json").read_text())["evidence"].get("cost") or {}
        print(f"outside the training steps: {cost.get('fixed_s_per_trial')} s per trial "
              f"(median), {cost.get('fixed_share')} of the trials' time")  # fmt: skip
    after = _digests(*watched)
    changed = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
    print("out/ and the HF cache:", "CHANGED: " + ", ".join(changed) if changed else "unchanged")
    return code or bool(changed)


if __name__ == "__main__":
    sys.exit(main())
