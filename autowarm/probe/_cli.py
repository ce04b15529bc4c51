"""``autowarm probe`` and ``autowarm show``.

Only argparse is imported at module level: optuna, torch and rich load inside the commands, so
``autowarm --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from typing import Any

PROBE_HELP = """\
Run SCRIPT many times as short probe runs (each its own process) and search its peak LR and
warmup length with Optuna. The script needs `optimizer = autowarm.wrap(optimizer)` and
`optimizer.report(loss)`; inside a probe the wrapped optimizer owns the LR.

autowarm options go before SCRIPT; everything after SCRIPT is passed to it.
Results are stored (default .autowarm/autowarm.db; see it with
`optuna-dashboard sqlite:///.autowarm/autowarm.db`); the same command again resumes.

exit codes: 0 done, 1 no stable trial, 2 bad input, 130 interrupted (resume by re-running)."""


def _positive_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer but got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe",
        help="search warmup and peak LR with short probe runs of a training script",
        description=PROBE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("script", help="the training script (python file)")
    p.add_argument("script_args", nargs=argparse.REMAINDER, help="arguments for the script")
    g = p.add_argument_group("search")
    g.add_argument("--trials", type=_positive_int, default=20, help="probe runs (default 20)")
    g.add_argument(
        "--steps",
        type=_positive_int,
        help="optimizer steps per probe (default: 10%% of --total-steps, between 30 and 100; "
        "100 without --total-steps)",
    )
    g.add_argument(
        "--lr-range",
        nargs=2,
        type=float,
        metavar=("MIN", "MAX"),
        help="peak LR search range (default: the script's own LR ÷10 … ×50)",
    )
    g.add_argument(
        "--max-warmup",
        type=_positive_int,
        help="longest warmup tried, in steps (default: half of --steps)",
    )
    g.add_argument(
        "--decay",
        default="cosine",
        help="decay shape after warmup, used by the probes and the recipe (default cosine)",
    )
    g.add_argument(
        "--min-lr-ratio",
        type=float,
        default=0.0,
        help="LR floor at the end of the decay, as a fraction of the peak (default 0)",
    )
    g.add_argument("--jobs", type=_positive_int, default=1, help="trials in parallel (default 1)")
    g.add_argument("--timeout", type=float, help="seconds for the whole search (no new trials)")
    g.add_argument("--trial-timeout", type=float, help="seconds before one trial is killed")
    g.add_argument("--seed", type=int, help="sampler seed (reproducible search)")
    g.add_argument("--sampler", default="tpe", help="tpe (default, multivariate TPE), gp or qmc")
    g.add_argument(
        "--prune",
        default="cohort",
        help="cohort (default: also stop a run far behind finished runs with a similar warmup, "
        "once its warmup is over) or none (only unstable runs stop early)",
    )
    g.add_argument(
        "--margin",
        type=float,
        default=2.0,
        help="recommended peak LR <= lowest unstable LR / MARGIN (default 2)",
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--total-steps",
        type=_positive_int,
        help="steps of your full run, for the emitted schedule (default: left open)",
    )
    o.add_argument(
        "--warmup-transfer",
        choices=("fraction", "steps"),
        default="fraction",
        help="carry the probe's warmup to the full run as the same fraction of the run "
        "(default) or the same number of steps",
    )
    o.add_argument(
        "--horizon-exponent",
        type=float,
        default=0.05,
        help="full-run peak LR = probe's best x (steps / total-steps) ** this (default 0.05; "
        "0 keeps the probe's LR)",
    )
    o.add_argument("--out", default="autowarm.json", help="recipe file (default autowarm.json)")
    o.add_argument("--json", action="store_true", help="one JSON document on stdout, nothing else")
    o.add_argument("--png", metavar="PATH", help="also write the stability map + schedule PNG")
    _storage_args(o)
    p.set_defaults(func=probe_command)

    s = sub.add_parser(
        "show",
        help="print a stored probe study's trials and recommendation again",
        description="Print the trials, stability map and recommendation of a stored study.",
    )
    _storage_args(s)
    s.add_argument(
        "--total-steps",
        type=_positive_int,
        help="re-emit the schedule for a run of this many steps (default: the probe's)",
    )
    s.add_argument("--json", action="store_true", help="one JSON document on stdout")
    s.set_defaults(func=show_command)


def _storage_args(p: Any) -> None:
    p.add_argument(
        "--storage",
        help="Optuna storage URL: sqlite:///f.db, postgresql://…, journal:///f.log "
        "(default sqlite:///.autowarm/autowarm.db)",
    )
    p.add_argument("--study", help="study name (default: from the script path and args)")


# ---------------------------------------------------------------------------------------------


def _consoles(as_json: bool) -> tuple[Any, Any]:
    from rich.console import Console

    progress = Console(stderr=True)
    final = Console(stderr=True) if as_json else Console()
    return progress, final


def _check_decay(decay: str, steps: int) -> None:
    from autowarm._errors import AutowarmError
    from autowarm._schedules import DECAY_SHAPES

    if decay not in DECAY_SHAPES:
        raise AutowarmError(f"--decay must be one of {', '.join(DECAY_SHAPES)} but got {decay!r}.")


def _document(recipe: Any, records: list[Any], cost: dict[str, Any], study: str, url: str) -> str:
    doc = {
        "recipe": recipe.to_dict() if recipe is not None else None,
        "trials": [r.to_json() for r in records],
        "cost": cost,
        "study": study,
        "storage": url,
    }
    # strict JSON: NaN/Inf (a diverged loss) become null
    return json.dumps(_json_safe(doc), allow_nan=False, default=lambda x: None)


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def probe_command(args: argparse.Namespace) -> int:
    import os

    from autowarm._errors import AutowarmError
    from autowarm._io import check_writable
    from autowarm.probe._search import ProbeConfig, validate

    script_args = list(args.script_args)
    if script_args[:1] == ["--"]:
        script_args = script_args[1:]
    steps = args.steps
    if steps is None:
        # 10% of the run, at most 100 steps: 20 probes then cost <= 2 full runs of a short run
        # and <= 10% of a run of >= 20,000 steps
        steps = 100 if args.total_steps is None else min(100, max(30, args.total_steps // 10))
    config = ProbeConfig(
        script=args.script,
        args=tuple(script_args),
        steps=steps,
        trials=args.trials,
        total_steps=args.total_steps,
        decay=args.decay,
        min_lr_ratio=args.min_lr_ratio,
        lr_range=tuple(args.lr_range) if args.lr_range else None,  # type: ignore[arg-type]
        max_warmup=args.max_warmup,
        jobs=args.jobs,
        timeout=args.timeout,
        seed=args.seed,
        sampler=args.sampler,
        prune=args.prune,
        margin=args.margin,
    )
    # 1) every check that needs no work first: flags, output paths, the script itself
    validate(config)
    _check_decay(config.decay, config.steps)
    if not 0.0 <= args.min_lr_ratio <= 1.0:
        raise AutowarmError(f"--min-lr-ratio must be in [0, 1] but got {args.min_lr_ratio:g}.")
    if not 0.0 <= args.horizon_exponent <= 1.0:
        raise AutowarmError(
            f"--horizon-exponent must be in [0, 1] but got {args.horizon_exponent:g}."
        )
    if args.trial_timeout is not None and args.trial_timeout <= 0:
        raise AutowarmError(f"--trial-timeout must be > 0 but got {args.trial_timeout:g}.")
    check_writable(args.out)
    if args.png:
        check_writable(args.png)
    if not os.path.isfile(args.script):
        raise AutowarmError(
            f"script {args.script!r} does not exist; pass the path of your training script."
        )

    import optuna

    from autowarm.probe._recommend import recommend
    from autowarm.probe._report import LiveReport, print_final, write_png
    from autowarm.probe._runner import ProbeRunner
    from autowarm.probe._search import SAMPLERS, ProbeSearch
    from autowarm.probe._storage import default_study_name, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    progress, final = _consoles(args.json)
    command = shlex.join([os.path.basename(sys.executable), args.script, *script_args])

    # 2) the runner validates the script (compiles) before the storage is touched
    # parallel trials share the cores: each gets its share of BLAS/torch threads
    threads = max(1, (os.cpu_count() or 1) // config.jobs) if config.jobs > 1 else None
    runner = ProbeRunner(
        args.script, script_args, trial_timeout=args.trial_timeout, threads=threads
    )
    report = LiveReport(progress, probe_steps=config.steps)
    try:
        storage, url = open_storage(args.storage)
        name = args.study or default_study_name(args.script, script_args, config.design())
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=SAMPLERS[config.sampler](config.seed, config.trials),
            direction="minimize",
            load_if_exists=True,
        )
        settings = {
            "script": args.script,
            "args": script_args,
            "command": command,
            "steps": config.steps,
            "warmup_max": config.warmup_max,
            "decay": config.decay,
            "min_lr_ratio": config.min_lr_ratio,
            "total_steps": config.total_steps,
            "margin": config.margin,
            "warmup_transfer": args.warmup_transfer,
            "horizon_exponent": args.horizon_exponent,
        }
        for k, v in settings.items():
            study.set_user_attr(k, v)
        progress.print(f"study {name!r} in {url}", style="dim", highlight=False)
        search = ProbeSearch(runner, study, config, reporter=report, command=command)
        try:
            result = search.run()
        finally:
            report.close()
    finally:
        runner.close()

    # 3) the result
    records = [r for r in result.records if r.status not in ("running", "waiting")]
    cost = {
        "optimizer_steps": int(sum(r.steps for r in records)),
        "wall_s": round(result.wall_s, 3),
        "train_s": round(sum(r.train_s for r in records), 3),
    }
    extra = {
        "script_lr": result.script_lr,
        "lr_range": list(result.lr_range),
        "study": name,
        "cost": cost,
    }
    recipe = None
    error: str | None = None
    try:
        recipe = recommend(
            records,
            probe_steps=config.steps,
            total_steps=config.total_steps,
            decay=config.decay,
            min_lr_ratio=config.min_lr_ratio,
            margin=config.margin,
            warmup_transfer=args.warmup_transfer,
            horizon_exponent=args.horizon_exponent,
            extra_evidence=_json_safe(extra),
        )
    except AutowarmError as e:
        error = str(e)

    if result.interrupted:
        final.print()
        final.print("interrupted: finished trials are kept; run the same command to resume.")
        if recipe is not None:
            final.print(f"best so far: peak LR {recipe.peak_lr:.3g}, warmup {recipe.warmup_steps}")
        print_final(final, records, recipe, lr_range=result.lr_range, warmup_max=config.warmup_max)
        if args.json:
            sys.stdout.write(_document(recipe, records, cost, name, url) + "\n")
        return 130
    if recipe is not None:
        recipe.save(args.out)
        if args.png:
            write_png(
                args.png,
                records,
                recipe,
                lr_range=result.lr_range,
                warmup_max=config.warmup_max,
            )
    if result.timed_out:
        final.print(f"--timeout reached after {result.wall_s:.0f} s; resume with the same command.")
    print_final(
        final,
        records,
        recipe,
        lr_range=result.lr_range,
        warmup_max=config.warmup_max,
        out=args.out if recipe is not None else None,
    )
    if args.json:
        sys.stdout.write(_document(recipe, records, cost, name, url) + "\n")
    if error is not None:
        sys.stderr.write(f"autowarm: {error}\n")
        return 1
    return 0


def show_command(args: argparse.Namespace) -> int:
    import optuna

    from autowarm._errors import AutowarmError
    from autowarm.probe._recommend import HORIZON_EXPONENT, recommend
    from autowarm.probe._report import print_final
    from autowarm.probe._search import records as load_records
    from autowarm.probe._storage import latest_study_name, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _, final = _consoles(args.json)
    storage, url = open_storage(args.storage, create=False)
    name = args.study or latest_study_name(storage)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = ", ".join(optuna.get_all_study_names(storage)) or "none"
        raise AutowarmError(
            f"--study {name!r} is not in {url}; the stored studies are: {names}."
        ) from None
    a = study.user_attrs
    recs = [r for r in load_records(study) if r.status not in ("running", "waiting")]
    steps = int(a.get("steps", 0)) or 1
    warmup_max = int(a.get("warmup_max", steps // 2))
    lrs = [r.peak_lr for r in recs] or [1e-3]
    lr_range = tuple(a.get("lr_range") or (min(lrs), max(lrs)))
    recipe = None
    error = None
    try:
        recipe = recommend(
            recs,
            probe_steps=steps,
            total_steps=args.total_steps or a.get("total_steps"),
            decay=a.get("decay", "cosine"),
            min_lr_ratio=float(a.get("min_lr_ratio", 0.0)),
            margin=float(a.get("margin", 2.0)),
            warmup_transfer=a.get("warmup_transfer", "fraction"),
            horizon_exponent=float(a.get("horizon_exponent", HORIZON_EXPONENT)),
            extra_evidence=_json_safe(
                {"script_lr": a.get("script_lr"), "lr_range": list(lr_range), "study": name}
            ),
        )
    except AutowarmError as e:
        error = str(e)
    final.print(f"study {name!r} in {url}: {a.get('command', '')}", highlight=False)
    print_final(
        final,
        recs,
        recipe,
        lr_range=lr_range,
        warmup_max=warmup_max,
        table=True,  # type: ignore[arg-type]
    )
    if args.json:
        cost = {
            "optimizer_steps": int(sum(r.steps for r in recs)),
            "wall_s": None,
            "train_s": round(sum(r.train_s for r in recs), 3),
        }
        sys.stdout.write(_document(recipe, recs, cost, name, url) + "\n")
    if error is not None:
        sys.stderr.write(f"autowarm: {error}\n")
        return 1
    return 0
