"""``autowarm probe`` and ``autowarm show``.

Only argparse and the (light) config module are imported at module level: optuna, torch and
rich load inside the commands, so ``autowarm --help`` stays fast. Every default comes from
:class:`~autowarm.probe._config.ProbeConfig`: a flag left out is a field left at its default.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from autowarm._args import nonnegative_int, positive_int
from autowarm.probe._config import (
    DESIGN_ATTR,
    HORIZON_EXPONENT,
    HORIZON_EXPONENT_AT_EDGE,
    HORIZON_EXPONENT_FRESH,
    LR_RANGE_ATTR,
    LR_WIDENED_ATTR,
    MEMORISING_PASSES,
    SCRIPT_DIGEST_ATTR,
    SCRIPT_LR_ATTR,
    WARMUP_TRANSFERS,
    ProbeConfig,
)

PROBE_HELP = """\
Run SCRIPT many times as short probe runs (each its own process) and search its peak LR and
warmup length with Optuna. The script needs `optimizer = autowarm.wrap(optimizer)` and
`optimizer.report(loss)`; inside a probe the wrapped optimizer owns the LR.

autowarm options go before SCRIPT; everything after SCRIPT is passed to it.
Results are stored (default .autowarm/autowarm.db; see it with
`optuna-dashboard sqlite:///.autowarm/autowarm.db`); the same command again resumes.

exit codes: 0 done, 1 no stable trial, 2 bad input, 130 interrupted by Ctrl-C (128+N for
signal N: 143 SIGTERM, 129 SIGHUP); resume by running the same command again."""

_D = ProbeConfig(script="")  # the defaults, for the help texts
#: a trial's fixed cost (outside its training steps) worth a line in the report, as a share
FIXED_COST_NOTE = 0.25
#: ... and said to be torch.compile's where compiling is at least this share of it
COMPILE_NOTE = 0.5
# argparse takes "-1e-3" for an option (its negative-number pattern has no exponent): a
# negative LR bound must reach the validation and its one-line message instead
_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe",
        help="search warmup and peak LR with short probe runs of a training script",
        description=PROBE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p._negative_number_matcher = _NUMBER  # type: ignore[attr-defined]
    p.add_argument("script", help="the training script (python file)")
    p.add_argument("script_args", nargs=argparse.REMAINDER, help="arguments for the script")
    g = p.add_argument_group("search")
    g.add_argument("--trials", type=positive_int, help=f"probe runs (default {_D.trials})")
    g.add_argument(
        "--steps",
        type=positive_int,
        help="optimizer steps per probe (default: 10%% of --total-steps, between 30 and 100; "
        f"{_D.steps} without --total-steps)",
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
        type=nonnegative_int,
        help="longest warmup tried, in steps (default: half of --steps)",
    )
    g.add_argument(
        "--decay",
        help=f"decay shape after warmup, used by the probes and the recipe (default {_D.decay})",
    )
    g.add_argument(
        "--min-lr-ratio",
        type=float,
        help="LR floor at the end of the decay, as a fraction of the peak "
        f"(default {_D.min_lr_ratio:g})",
    )
    g.add_argument("--jobs", type=positive_int, help=f"trials in parallel (default {_D.jobs})")
    g.add_argument(
        "--nproc-per-node",
        type=positive_int,
        help="ranks per trial: each trial runs the script under torch.distributed.run, like "
        f"torchrun --nproc-per-node N (default {_D.nproc_per_node})",
    )
    g.add_argument("--timeout", type=float, help="seconds for the whole search (no new trials)")
    g.add_argument("--trial-timeout", type=float, help="seconds before one trial is killed")
    g.add_argument("--seed", type=int, help="sampler seed (reproducible search)")
    g.add_argument("--sampler", help="tpe (default, multivariate TPE), gp or qmc")
    g.add_argument(
        "--prune",
        help="cohort (default: also stop a run far behind finished runs with a similar warmup, "
        "once its warmup is over) or none (only unstable runs stop early)",
    )
    g.add_argument(
        "--margin",
        type=float,
        help=f"recommended peak LR <= lowest unstable LR / MARGIN (default {_D.margin:g})",
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--total-steps",
        type=positive_int,
        help="steps of your full run, for the emitted schedule (default: left open)",
    )
    o.add_argument(
        "--warmup-transfer",
        choices=WARMUP_TRANSFERS,
        help="carry the probe's warmup to the full run as the same fraction of the run, "
        "the same number of steps, or steps x sqrt(total / probe steps) "
        f"(default {_D.warmup_transfer})",
    )
    o.add_argument(
        "--horizon-exponent",
        type=float,
        help="full-run peak LR = probe's best x (steps / total-steps) ** this (default "
        f"{HORIZON_EXPONENT:g}; {HORIZON_EXPONENT_FRESH:g} where the full run makes fewer than "
        f"{MEMORISING_PASSES} passes over its data; {HORIZON_EXPONENT_AT_EDGE:g} when the pick "
        "sits near a stability edge the probes found; 0 keeps the probe's LR)",
    )
    o.add_argument(
        "--epochs",
        type=float,
        help="how many times the full run sees each training example, where autowarm cannot "
        "read it from a DataLoader or a trainer (1 for data generated fresh every batch); "
        f"under {MEMORISING_PASSES} passes the LR keeps more of the probes' (a model cannot "
        "memorise its data), and a noisy training loss cuts it only from there",
    )
    o.add_argument("--out", default="autowarm.json", help="recipe file (default autowarm.json)")
    o.add_argument("--json", action="store_true", help="one JSON document on stdout, nothing else")
    o.add_argument("--png", metavar="PATH", help="also write the stability map + schedule PNG")
    _storage_args(o, study_help="study name (default: from the script, its args and the design)")
    p.set_defaults(func=probe_command, own_flags=_flags(p))

    s = sub.add_parser(
        "show",
        help="print a stored probe study's trials and recommendation again",
        description="Print the trials, stability map and recommendation of a stored study.",
    )
    _storage_args(s, study_help="study name (default: the study with the most recent trial)")
    s.add_argument(
        "--total-steps",
        type=positive_int,
        help="re-emit the schedule for a run of this many steps (default: the probe's)",
    )
    s.add_argument("--json", action="store_true", help="one JSON document on stdout")
    s.set_defaults(func=show_command)


def _storage_args(p: Any, *, study_help: str) -> None:
    p.add_argument(
        "--storage",
        help="Optuna storage URL: sqlite:///f.db, postgresql://…, journal:///f.log "
        "(default sqlite:///.autowarm/autowarm.db)",
    )
    p.add_argument("--study", help=study_help)


def _flags(parser: argparse.ArgumentParser) -> tuple[str, ...]:
    """Every option string of ``parser`` (to spot them among the script's arguments)."""
    return tuple(s for action in parser._actions for s in action.option_strings)


def _config(args: argparse.Namespace) -> ProbeConfig:
    """The flags as a :class:`ProbeConfig`: a flag not given keeps the config's default."""
    script_args = list(args.script_args)
    if script_args[:1] == ["--"]:  # `train.py -- ARGS`: all of ARGS are the script's own
        script_args = script_args[1:]
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(ProbeConfig)
        if f.name not in ("script", "args") and getattr(args, f.name, None) is not None
    }
    if "lr_range" in given:
        given["lr_range"] = tuple(given["lr_range"])
    return ProbeConfig(script=args.script, args=tuple(script_args), **given)


# ---------------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    """What a search (``probe``) or a stored study (``show``) leaves to recommend from."""

    study: str
    url: str
    records: list[Any]
    lr_range: tuple[float, float]
    script_lr: float | None
    widened: list[Any] = field(default_factory=list)  # how the search widened its LR range
    cost: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    stop_signal: int | None = None  # the signal that interrupted the search (None: SIGINT)
    timed_out: bool = False
    wall_s: float = 0.0
    owner: str = ""  # this worker's (probe): the records of other owners came from elsewhere
    active: list[Any] = field(default_factory=list)  # running and waiting trials (show)

    @property
    def exit_code(self) -> int:
        """128 + the signal, as a shell reports a process that signal stopped."""
        return 128 + (self.stop_signal or 2)


def probe_command(args: argparse.Namespace) -> int:
    from autowarm._io import check_writable
    from autowarm.probe._config import validate
    from autowarm.schedule._png import require_matplotlib

    config = _config(args)
    # 1) every check that needs no work first: flags, output paths (the runner checks the script)
    validate(config)
    misplaced = _misplaced_flags(args)
    check_writable(args.out)
    if args.png:
        check_writable(args.png)
        require_matplotlib()

    from autowarm.probe._report import LiveReport
    from autowarm.probe._search import ProbeSearch, SearchStopped

    progress, final = _consoles(args.json)
    runner = _runner(config)  # it validates the script (compiles) before the storage is touched
    report = LiveReport(progress, probe_steps=config.steps)
    if misplaced:
        report.warn(_misplaced_note(args, misplaced))
    try:
        study, url = _open_study(args, config, report)
        search = ProbeSearch(runner, study, config, reporter=report, command=config.command)
        try:
            result = search.run()
        except SearchStopped as e:
            if not misplaced:
                raise
            raise SearchStopped(f"{e} ({_misplaced_note(args, misplaced)})") from None
        finally:
            report.close()
    finally:
        runner.close()
    # 3) the result
    outcome = _Outcome(
        study=study.study_name,
        url=url,
        records=_settled(result.records),
        lr_range=result.lr_range,
        script_lr=result.script_lr,
        widened=study.user_attrs.get(LR_WIDENED_ATTR, []),
        interrupted=result.interrupted,
        stop_signal=result.stop_signal,
        timed_out=result.timed_out,
        wall_s=result.wall_s,
        owner=result.owner,
    )
    outcome.cost = _cost(outcome.records, wall_s=round(result.wall_s, 3))
    notes = (
        _scratch_note(runner.redirected, runner.removed),
        _fixed_cost_note(outcome.cost, ranks=config.nproc_per_node),
    )
    for note in notes:
        if note is not None:
            report.note(note)
    return _conclude(args, config, outcome, final, save=True)


def _runner(config: ProbeConfig) -> Any:
    import os

    from autowarm.probe._runner import ProbeRunner

    # parallel trials share the cores: each gets its share of BLAS/torch threads
    processes = config.jobs * config.nproc_per_node
    threads = max(1, (os.cpu_count() or 1) // processes) if processes > 1 else None
    return ProbeRunner(
        config.script,
        config.args,
        trial_timeout=config.trial_timeout,
        threads=threads,
        nproc_per_node=config.nproc_per_node,
        seed=config.seed,
    )


def _command(config: ProbeConfig) -> list[str]:
    """How the user runs the script by hand: ``python train.py args``, or under torchrun."""
    n = config.nproc_per_node
    launcher = (
        [os.path.basename(sys.executable)] if n == 1 else ["torchrun", f"--nproc-per-node={n}"]
    )
    return [*launcher, config.script, *config.args]


def _scratch_note(redirected: set[str], removed: set[str]) -> str | None:
    """What the trials wrote went to their scratch folders, what they removed is still there:
    say so (see probe/_scratch.py)."""
    if not redirected and not removed:
        return None

    def some(paths: set[str]) -> str:  # the project's own paths first: they are the news
        ordered = sorted(paths, key=lambda p: (_shown(p).startswith(("~", "/")), p))
        return ", ".join(map(_shown, ordered[:3])) + (" …" if len(paths) > 3 else "")

    wrote = (
        f"wrote {len(redirected)} file{'s' * (len(redirected) != 1)} ({some(redirected)}) "
        "into their own scratch folders, "
        "deleted after each trial"
    )
    gone = f"removed {len(removed)} of your paths ({some(removed)}) in their own view only"
    parts = [wrote] * bool(redirected) + [gone] * bool(removed)
    return f"the trials {'; '.join(parts)}: your files are untouched."


def _shown(path: str) -> str:
    """A path as the report shows it: relative inside the working directory, else from ``~``
    or absolute (a library's cache under the home folder, not ``../../root/.cache/...``)."""
    rel = os.path.relpath(path)
    if rel != os.pardir and not rel.startswith(os.pardir + os.sep):
        return rel
    home = os.path.expanduser("~")
    return "~" + path[len(home) :] if path.startswith(home + os.sep) else path


def _misplaced_flags(args: argparse.Namespace) -> list[str]:
    """autowarm's own flags among the script's arguments: ``autowarm probe train.py --trials
    5`` hands ``--trials 5`` to the script. A ``--`` after the script says they are its own."""
    script_args = list(args.script_args)
    if script_args[:1] == ["--"]:
        return []
    from autowarm._errors import AutowarmError

    if "-h" in script_args or "--help" in script_args:
        raise AutowarmError(
            f"{args.script} {'-h' if '-h' in script_args else '--help'} would print the "
            "script's help in every trial; for autowarm's options run `autowarm probe --help`."
        )
    ours = set(args.own_flags)
    return [a for a in script_args if a.split("=", 1)[0] in ours]


def _misplaced_note(args: argparse.Namespace, flags: list[str]) -> str:
    return (
        f"{' '.join(flags)} after {args.script} went to the script: autowarm's options go "
        f"before it (autowarm probe {flags[0].split('=', 1)[0]} … {args.script}); "
        f"write `{args.script} -- ARGS` if they are the script's own"
    )


def _open_study(args: argparse.Namespace, config: ProbeConfig, report: Any) -> tuple[Any, str]:
    import optuna

    from autowarm.probe._samplers import SAMPLERS
    from autowarm.probe._storage import default_study_name, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage, url = open_storage(args.storage)
    name = args.study or default_study_name(config.script, config.args, config.design())
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=SAMPLERS[config.sampler](config.seed, config.trials),
        direction="minimize",
        load_if_exists=True,
    )
    report.note(f"study {name!r} in {url}")
    _check_same_design(study, config)
    stored = study.user_attrs.get(SCRIPT_DIGEST_ATTR)
    attrs = config.to_attrs()
    if stored is not None and stored != attrs[SCRIPT_DIGEST_ATTR] and study.trials:
        # only with --study NAME: the default name already starts a new study for it
        report.warn(
            f"{config.script} changed since the {len(study.trials)} trials of study {name!r}; "
            "they are kept and still count. To start fresh, pass another --study NAME."
        )
    for k, v in attrs.items():
        study.set_user_attr(k, v)
    return study, url


def _check_same_design(study: Any, config: ProbeConfig) -> None:
    """A worker joining a study must probe the same way: one line naming what differs."""
    from autowarm._errors import AutowarmError

    stored = study.user_attrs.get(DESIGN_ATTR)
    if stored is None or not study.trials:
        return
    mine = config.comparable()
    diffs = [
        f"{k} {_flag(stored.get(k))} (study) vs {_flag(v)}"
        for k, v in mine.items()
        if stored.get(k) != v
    ]
    if diffs:
        raise AutowarmError(
            f"study {study.study_name!r} was probed with other settings: {'; '.join(diffs)}; "
            "pass the study's settings, or another --study NAME for a new search."
        )


def _flag(value: Any) -> str:
    if value is None:
        return "(default)"
    if isinstance(value, list):
        return " ".join(f"{v:g}" for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def show_command(args: argparse.Namespace) -> int:
    import optuna
    from rich.console import Console

    from autowarm._errors import AutowarmError
    from autowarm.probe._record import records
    from autowarm.probe._storage import latest_study_name, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    final = Console(quiet=True) if args.json else Console()  # --json: the document alone
    storage, url = open_storage(args.storage, create=False)
    name = args.study or latest_study_name(storage)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = ", ".join(optuna.get_all_study_names(storage)) or "none"
        raise AutowarmError(
            f"--study {name!r} is not in {url}; the stored studies are: {names}."
        ) from None
    attrs = study.user_attrs
    config = ProbeConfig.from_attrs(attrs)
    if args.total_steps is not None:
        config = config.for_total_steps(args.total_steps)
    every = records(study)
    recs = _settled(every)
    lrs = [r.peak_lr for r in recs] or [1e-3]
    lr_range = tuple(attrs.get(LR_RANGE_ATTR) or (min(lrs), max(lrs)))
    outcome = _Outcome(name, url, recs, lr_range, attrs.get(SCRIPT_LR_ATTR))  # type: ignore[arg-type]
    outcome.widened = attrs.get(LR_WIDENED_ATTR, [])
    outcome.cost = _cost(recs, wall_s=None)
    outcome.active = [r for r in every if r not in recs]
    final.print(f"study {name!r} in {url}: {attrs.get('command', '')}", highlight=False)
    return _conclude(args, config, outcome, final, save=False)


# -- the shared tail: recommend -> print -> JSON -> exit code ---------------------------------


def _conclude(
    args: argparse.Namespace, config: ProbeConfig, out: _Outcome, final: Any, *, save: bool
) -> int:
    from autowarm._errors import AutowarmError
    from autowarm.probe._report import print_final

    if out.interrupted and not out.records and not out.lr_range[0] > 0:
        # stopped while reading the script's own LR: no trial, no range, nothing to show
        final.print("interrupted before the first trial; run the same command to start again.")
        _write_json(args, None, out, error="interrupted")
        return out.exit_code
    recipe, error = None, None
    try:
        recipe = _recommend(config, out, cost=save)
    except AutowarmError as e:
        error = str(e)
    if out.interrupted:
        final.print()
        final.print("interrupted: finished trials are kept; run the same command to resume.")
        if recipe is not None:
            final.print(f"best so far: peak LR {recipe.peak_lr:.3g}, warmup {recipe.warmup_steps}")
    elif save and recipe is not None:
        _save(args, config, out, recipe)
    if out.timed_out and not out.interrupted:
        final.print(
            f"--timeout reached after {out.wall_s:.0f} s with {len(out.records)} of "
            f"{config.trials} trials: a thin base for the recommendation; run the same command "
            "to resume and add the rest."
        )
    written = args.out if save and recipe is not None and not out.interrupted else None
    if recipe is not None:
        _say_sources(final, out)
    print_final(
        final,
        [*out.records, *out.active],
        recipe,
        lr_range=out.lr_range,
        warmup_max=config.warmup_max,
        out=written,
        table=not save,
        command=_command(config),
    )
    _write_json(args, recipe, out, error=error)
    if out.interrupted:
        return out.exit_code
    if error is not None:
        sys.stderr.write(f"autowarm: {error}\n")
        return 1
    return 0


def _say_sources(final: Any, out: _Outcome) -> None:
    """A worker's recommendation comes from every trial the study finished, also other
    workers' (several machines on one study): say so."""
    used = _settled([r for r in out.records if r.status != "interrupted"])  # as recommend()'s
    others = sum(r.owner != out.owner for r in used) if out.owner else 0
    if others:
        final.print(
            f"recommendation from {len(used)} trials ({others} run by other workers "
            "or earlier runs)",
            highlight=False,
        )


def passes(data: dict[str, int] | None, total_steps: int | None) -> float | None:
    """How many times a run of ``total_steps`` sees each training example, from ``data`` as a
    trainer's callback told it (``TrialRecord.data``); None where either is unknown."""
    if not data or not total_steps:
        return None
    return total_steps * data["examples_per_step"] / data["train_examples"]


def _recommend(config: ProbeConfig, out: _Outcome, *, cost: bool) -> Any:
    from autowarm._json import json_safe
    from autowarm.probe._doubts import doubts
    from autowarm.probe._recommend import recommend

    data = next((r.data for r in out.records if r.data), None)
    extra: dict[str, Any] = {
        "script_lr": out.script_lr,
        "lr_range": list(out.lr_range),
        "lr_range_widened": out.widened,
        "study": out.study,
        # the loop sets param_group["lr"] itself: the code to paste is for that loop
        "script_sets_lr": any(r.sets_lr for r in out.records),
        # the framework's trainer it ran under ("hf": the report prints TrainingArguments)
        "script_trainer": next((r.trainer for r in out.records if r.trainer), None),
        # its training data as that trainer's callback read it, and the full run's passes
        "script_data": data,
        "data_passes": (
            config.epochs if config.epochs is not None else passes(data, config.total_steps)
        ),
        # the LR scheduler the script steps itself: the report says to replace it
        "script_scheduler": next((r.scheduler for r in out.records if r.scheduler), None),
        # the optimizer it built: the code to paste builds that one ("torch.optim.SGD")
        "script_optimizer": next((r.optimizer for r in out.records if r.optimizer), None),
        # what the trials' scores are: the script's autowarm.score_with(), or the training loss
        "scored_by": (
            "score_with" if any(r.script_scored for r in out.records) else "training loss"
        ),
        # the report's label for a score_with() value (the HF callback's: "eval_loss")
        "score_name": next((r.score_name for r in out.records if r.score_name), None),
    }
    if cost:
        extra["cost"] = out.cost
    recipe = recommend(
        out.records,
        probe_steps=config.steps,
        total_steps=config.total_steps,
        decay=config.decay,
        min_lr_ratio=config.min_lr_ratio,
        margin=config.margin,
        warmup_transfer=config.warmup_transfer,
        horizon_exponent=config.horizon_exponent,
        extra_evidence=json_safe(extra),
    )
    # what the trials could not show: a line each in the report, a list in the evidence
    unsure = doubts(
        out.records, recipe.evidence, lr_range=out.lr_range, warmup_max=config.warmup_max
    )
    return dataclasses.replace(recipe, evidence={**recipe.evidence, "doubts": unsure})


def _save(args: argparse.Namespace, config: ProbeConfig, out: _Outcome, recipe: Any) -> None:
    recipe.save(args.out)
    if args.png:
        from autowarm.probe._png import write_png

        write_png(
            args.png, out.records, recipe, lr_range=out.lr_range, warmup_max=config.warmup_max
        )


def _settled(records: list[Any]) -> list[Any]:
    from autowarm.probe._status import settled

    return settled(records)


def _cost(records: list[Any], *, wall_s: float | None) -> dict[str, Any]:
    # a trial's fixed cost: its wall time outside the training steps (interpreter or fork,
    # the script's setup, a step-0 evaluation, teardown), paid by every trial
    fixed = sorted(max(0.0, r.wall_s - r.train_s) for r in records if r.wall_s > 0)
    compiled = sorted(r.compile_s for r in records if r.wall_s > 0)  # torch.compile's part
    return {
        "optimizer_steps": int(sum(r.steps for r in records)),
        "wall_s": wall_s,
        "train_s": round(sum(r.train_s for r in records), 3),
        "fixed_s_per_trial": round(fixed[len(fixed) // 2], 3) if fixed else None,
        "fixed_share": round(sum(fixed) / sum(r.wall_s for r in records), 3) if fixed else None,
        "compile_s_per_trial": round(compiled[len(compiled) // 2], 3) if compiled else None,
    }


def _fixed_cost_note(cost: dict[str, Any], *, ranks: int = 1) -> str | None:
    """Say what each trial pays outside its training steps, when it is a large share
    (``ranks``: the processes a distributed trial starts)."""
    share = cost.get("fixed_share")
    if share is None or share < FIXED_COST_NOTE:
        return None
    spent = (
        f"each trial spent {cost['fixed_s_per_trial']:.2f} s (median) outside its training "
        f"steps -- {share:.0%} of the probe's trial time"
    )
    compiled = cost.get("compile_s_per_trial") or 0.0
    if compiled >= COMPILE_NOTE * cost["fixed_s_per_trial"]:
        # a probe's few steps rarely repay a compile; the LR's effect is the same eager
        return (
            f"{spent}, {compiled:.2f} s of it in torch.compile: compile only "
            "`if not autowarm.probing():` (a probe's few steps do not repay it)."
        )
    if ranks > 1:  # a distributed trial cannot be forked from a warm server
        return (
            f"{spent}, much of it the launcher and each rank's interpreter start and imports; "
            "work a probe does not need (evaluation, sampling, checkpoints) can go under "
            "`if not autowarm.probing():`."
        )
    return (
        f"{spent}: put work a probe does not need (evaluation, sampling, checkpoints) under "
        "`if not autowarm.probing():`."
    )


def _consoles(as_json: bool) -> tuple[Any, Any]:
    from rich.console import Console

    progress = Console(stderr=True)
    final = Console(stderr=True) if as_json else Console()
    return progress, final


def _write_json(args: argparse.Namespace, recipe: Any, out: _Outcome, *, error: str | None) -> None:
    """``--json``: the one document on stdout (``error`` says why there is no recipe)."""
    if not args.json:
        return
    from autowarm._json import json_safe

    doc = {
        "recipe": recipe.to_dict() if recipe is not None else None,
        "trials": [r.to_json() for r in out.records],
        "cost": out.cost,
        "study": out.study,
        "storage": out.url,
        "error": error,
    }
    sys.stdout.write(json.dumps(json_safe(doc), allow_nan=False) + "\n")
