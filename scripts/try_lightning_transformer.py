"""Run autowarm on Lightning's own Transformer example, a third-party script, through the
Lightning callback, and train its pick against the script's own LR.

    # the example is not part of this repo: copy it from a Lightning checkout
    mkdir /tmp/lt && cp pytorch-lightning/examples/pytorch/basics/transformer.py /tmp/lt/
    python scripts/try_lightning_transformer.py /tmp/lt --probe --seeds 0,1,2   # three searches
    python scripts/try_lightning_transformer.py /tmp/lt --runs --seeds 0,1,2    # full runs: a table

What it does in that folder (never in this repository):
1) ``transformer.py`` gets the two lines a Lightning user adds (the import and
   ``callbacks=[AutowarmCallback()]`` in its ``Trainer``) and, so that nothing is downloaded,
   ``WikiText2(download=False)`` over a local ``data/wikitext-2.txt``: the standard library's
   top-level modules, one source line a line, until 269,006 words, the words outside the 2,000
   most common replaced by ``<unk>`` as WikiText's were (26 % of them). The rest is the
   example's: Lightning's demo Transformer (2 layers, 200 wide, dropout 0.2), plain SGD at LR
   0.1 with no scheduler, ``gradient_clip_val=0.25``, batches of 20 blocks of 35 words, a
   validation pass each epoch. Its 20 epochs are 3,700 steps here, too long for a table on
   CPU: the runs below make ``EPOCHS`` (3: 555 steps), and ``--total-steps`` tells the probe so.
   For the full runs only, a ``RECIPE`` variable returns the recipe's scheduler with
   ``"interval": "step"`` (what ``recipe.render("lightning")`` prints), ``SEED`` sets
   ``seed_everything`` and ``METRICS`` receives ``trainer.test``'s result;
2) ``--probe``: ``autowarm probe --total-steps 555 --seed S transformer.py`` per seed, as a
   user would type it (``EPOCHS=3`` in the environment); each recipe is kept as
   ``recipe-S.json``;
3) ``--runs``: full runs (one torch thread each) of the script's own LR, of each
   ``recipe-S.json`` and of cosine with a 10 % warmup on a few peak LRs. Reported per schedule,
   mean +- s.e. over seeds (a seed is the init, the split and the batch order): the example's
   own ``test_loss`` after its last epoch.

Read the losses as an optimisation benchmark, not as language modelling: the demo
``Transformer`` (``lightning.pytorch.demos``, 2.6) feeds its decoder the target sequence itself
under a causal mask, and its encoder sees the whole input unmasked, so each position can read
the word it is asked to predict, and a well-trained model learns to copy it (test losses far
under what a word LM reaches). Which LR learns that fastest is still the question the script's
own LR gets wrong. Measured at this stop (the searches 15 min, the 27 full runs 35 min on two
cores; README, *In real scripts*):

| schedule (3 seeds) | test loss |
|---|---|
| script's own: 0.1, constant | 2.6226 ± 0.0082 |
| autowarm seed 0: 2.85, warmup 121 | 0.6712 ± 0.0067 |
| autowarm seed 1: 3.22, warmup 61 | 0.5411 ± 0.0142 |
| autowarm seed 2: 3.34, warmup 61 | 0.4850 ± 0.0053 |
| cosine 0.3 / 1 / 3 / 10 / 30, warmup 10% | 2.3719 / 1.5621 / 0.5943 / 0.0071 / 4.2873 |
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

EPOCHS = 3
STEPS = 555  # EPOCHS x 185 batches of the 3,685 training blocks
WORDS, VOCAB = 260_000, 2000
PATCH = [  # (the example's line, what it becomes)
    ("import torch\n", "import os\n\nimport torch\n"),
    ("import lightning as L\n",
     "import lightning as L\nfrom autowarm.integrations.lightning import AutowarmCallback\n"),
    ("trainer = L.Trainer(gradient_clip_val=0.25, max_epochs=20)",
     "trainer = L.Trainer(gradient_clip_val=0.25, max_epochs=int(os.environ.get('EPOCHS', 20)),"
     " callbacks=[AutowarmCallback()])"),
    ("dataset = WikiText2()", "dataset = WikiText2(download=False)"),
    # the full runs' harness, not a user's edit: the schedule, the seed and the test loss
    ("        return torch.optim.SGD(self.parameters(), lr=0.1)\n",
     "        optimizer = torch.optim.SGD(self.parameters(), lr=0.1)\n"
     "        if not os.environ.get('RECIPE'):\n"
     "            return optimizer\n"
     "        import autowarm\n\n"
     "        scheduler = autowarm.Recipe.load(os.environ['RECIPE']).scheduler(optimizer)\n"
     "        return {'optimizer': optimizer,\n"
     "                'lr_scheduler': {'scheduler': scheduler, 'interval': 'step'}}\n"),
    ("L.seed_everything(42)", "L.seed_everything(int(os.environ.get('SEED', 42)))"),
    ("    trainer.test(model, test_dataloader)\n",
     "    result = trainer.test(model, test_dataloader)\n"
     "    if os.environ.get('METRICS'):\n"
     "        import json\n\n"
     "        open(os.environ['METRICS'], 'w').write(json.dumps(result[0]))\n"),
]  # fmt: skip


def text() -> str:
    """The standard library's top-level modules, a source line a line, rare words <unk>."""
    lines: list[list[str]] = []
    n = 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        for line in path.read_text(encoding="utf8", errors="replace").splitlines():
            if words := line.split():
                lines.append(words)
                n += len(words) + 1
        if n > WORDS:
            break
    keep = {w for w, _ in collections.Counter(w for ws in lines for w in ws).most_common(VOCAB)}
    return "\n".join(" ".join(w if w in keep else "<unk>" for w in ws) for ws in lines) + "\n"


def prepare(folder: Path) -> None:
    path = folder / "transformer.py"
    src = path.read_text()
    if "autowarm" not in src:
        for old, new in PATCH:
            assert src.count(old) == 1, f"the example changed: update the patch for {old!r}"
            src = src.replace(old, new)
        path.write_text(src)
    data = folder / "data" / "wikitext-2.txt"
    if not data.exists():
        data.parent.mkdir(exist_ok=True)
        data.write_text(text(), encoding="utf8")


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "EPOCHS": str(EPOCHS), **extra}


def probe(folder: Path, seed: int) -> None:
    cmd = [sys.executable, "-m", "autowarm", "probe", "--total-steps", str(STEPS)]
    cmd += ["--seed", str(seed), "--out", f"recipe-{seed}.json", "transformer.py"]
    print("$ EPOCHS=3", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, cwd=folder, env=env(), check=True)


def run(folder: Path, recipe: str | None, seed: int) -> float:
    """One full run: the example's test loss after its last epoch."""
    out = folder / f"metrics-{recipe or 'own'}-{seed}.json"
    if not out.exists():
        extra = {"SEED": str(seed), "METRICS": str(out), **({"RECIPE": recipe} if recipe else {})}
        subprocess.run(
            [sys.executable, "transformer.py"], cwd=folder, env=env(**extra),
            capture_output=True, check=True,
        )  # fmt: skip
    return float(json.loads(out.read_text())["test_loss"])


def cosine(folder: Path, lr: float) -> str:
    from autowarm import Recipe

    path = folder / f"cosine-{lr:g}.json"
    Recipe(lr, STEPS // 10, STEPS, decay="cosine").save(path)
    return path.name


def table(folder: Path, seeds: list[int], workers: int) -> None:
    schedules: dict[str, str | None] = {"script's own: 0.1, constant": None}
    for seed in seeds:
        path = folder / f"recipe-{seed}.json"
        if path.exists():
            r = json.loads(path.read_text())
            label = f"autowarm seed {seed}: {r['peak_lr']:.3g}, warmup {r['warmup_steps']}"
            schedules[label] = path.name
    for lr in (0.3, 1.0, 3.0, 10.0, 30.0):
        schedules[f"cosine {lr:g}, warmup 10%"] = cosine(folder, lr)
    jobs = [(label, recipe, seed) for label, recipe in schedules.items() for seed in seeds]
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda j: run(folder, j[1], j[2]), jobs))
    print(f"\n| schedule ({len(seeds)} seeds) | test loss |\n|---|---|")
    for label in schedules:
        vals = [v for (lab, _, _), v in zip(jobs, results) if lab == label]
        se = statistics.stdev(vals) / len(vals) ** 0.5 if len(vals) > 1 else float("nan")
        print(f"| {label} | {statistics.fmean(vals):.4f} ± {se:.4f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where transformer.py (the example) is")
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
