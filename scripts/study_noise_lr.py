"""Does a search's training-loss noise trend with the LR differently for memorising scripts and
for batch noise? A look at the stored searches (bench_quality_variants.md, "the noise rule off").

    python scripts/study_noise_lr.py            # seconds: reads scripts/.cache/quality only
    python scripts/study_noise_lr.py --workloads adagrad_bow,finetune

Per search (probe seeds 0-2, the newest stored search for each), over its learning trials
(finished, score within 3x the best): the Spearman correlation with log peak LR of their
relative noise (noise / score) and of their absolute noise, and of the absolute noise with the
score. Prints one line per workload.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_quality as bq

#: the twelve scripts where the noise rule fires, and three quiet ones for reference
DEFAULT = (
    "adagrad_bow,teacher_relu_sgd,smallbatch_reg,rmsprop_cnn,cnn_digits,lightning_mlp,finetune,"
    "cancer_mlp,fewshot_digits,synth_cls_mlp,cnn_fewdigits,wine_mlp,charlm,gpt_nano,sgd_mlp"
)


def trends(doc: dict) -> str:
    rs = [
        r for r in doc.get("records", [])
        if r["status"] in ("stable", "spike") and r["score"] is not None
        and math.isfinite(r["score"]) and r["score"] > 0
    ]  # fmt: skip
    if len(rs) < 5:
        return "n/a"
    best = min(r["score"] for r in rs)
    good = [r for r in rs if r["score"] <= 3 * best]  # the learning trials
    lr = np.log([r["peak_lr"] for r in good])
    rel = np.array([r["noise"] / r["score"] for r in good])
    ab = np.array([r["noise"] for r in good])
    sc = np.array([r["score"] for r in good])
    return (
        f"rel~lr {spearmanr(lr, rel)[0]:+.2f} abs~lr {spearmanr(lr, ab)[0]:+.2f} "
        f"abs~score {spearmanr(sc, ab)[0]:+.2f} n={len(good)}"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default=DEFAULT)
    opts = p.parse_args(argv)
    by_name = {w.name: w for w in bq.WORKLOADS}
    for name in opts.workloads.split(","):
        w = by_name[name]
        rows = [trends(bq.probe(w, k, [], replay=True)) for k in (0, 1, 2)]
        print(f"{name:18s}", " | ".join(rows))


if __name__ == "__main__":
    main()
