"""The ``kvq`` command: wires problems, scans, importance, reports and files together."""

from __future__ import annotations

import argparse
import io
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from kvq.errors import KvqError
from kvq.game.sampling import SAMPLERS


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input as one ``kvq: error: ...`` line (exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(
            2,
            f"kvq: error: {message} (see 'kvq {self.prog.split()[-1]} --help')\n"
            if " " in self.prog
            else f"kvq: error: {message} (see 'kvq --help')\n",
        )


class ProgressPrinter:
    """Progress of a scan on ``stream``: steps done of total, elapsed, subset-steps/s and the
    time left if every training still running ran to the step cap.  The steps are those
    trained; a training that stops early takes the steps it will not run off the total (so
    does what a resumed run had saved), so the rate is the trainings' and the estimate only
    shrinks faster than it runs.

    On a terminal one line is rewritten in place; otherwise a line is printed at most
    every ``every_s`` seconds and when a phase completes.
    """

    def __init__(self, stream: TextIO | None = None, every_s: float = 5.0) -> None:
        if stream is None:  # several processes: process 0 shows the progress
            from kvq.core.devices import is_writer

            stream = sys.stderr if is_writer() else io.StringIO()
        self.stream = stream
        self.every_s = every_s
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()
        self.phase_t0: dict[str, float] = {}
        self.shown: dict[str, int] = {}
        self.last = 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        from kvq.workflows.pipeline import EVENTS  # the command says them in words

        if phase in EVENTS:
            return
        now = time.perf_counter()
        start = self.phase_t0.setdefault(phase, now)
        finished = done >= total
        if done == 0 or self.shown.get(phase) == done:
            return
        if not self.tty and not finished and now - self.last < self.every_s:
            return
        self.last, self.shown[phase] = now, done
        unit = {"train": "subset-steps", "refine": "subset-steps", "polish": "subset-steps", "solve": "systems"}.get(
            phase.split()[-1], "seed-steps"
        )
        rate = done / (now - start) if now > start else 0.0
        pct = 100.0 * done / total if total else 100.0
        msg = (
            f"{phase:>8}: {done:,}/{total:,} {unit} ({pct:5.1f}%)  elapsed {now - self.t0:6.1f} s  {rate:,.0f} {unit}/s"
        )
        if not finished and rate > 0:
            msg += f"  {(total - done) / rate:,.0f} s left if nothing more stops early"
        if self.tty:
            self.stream.write("\r" + msg + ("\n" if finished else ""))
        else:
            self.stream.write(msg + "\n")
        self.stream.flush()


def _point_options(s: argparse.ArgumentParser) -> None:
    """The one setting a scan (or tuning) runs at: observations, noise and split."""
    s.add_argument(
        "--data", type=int, default=None, metavar="N", help="number of observations (problem default if omitted)"
    )
    s.add_argument(
        "--noise", default=None, metavar="PCT", help="observation noise in %% of the solution's std (default 0)"
    )
    s.add_argument(
        "--split", default=None, help="interpolation (in-distribution) or extrapolation (out-of-distribution)"
    )


def _robustness_option(s: argparse.ArgumentParser) -> None:
    """The knowledge-or-optimizer check of exact scans (``kvq scan`` and ``kvq sweep``)."""
    s.add_argument(
        "--robustness",
        default="lbfgs",
        choices=["lbfgs", "longer", "wider", "denser", "off"],
        help="exact scans: before a rule is called improper or clearly harmful, train the coalitions that decide "
        "it again under a stronger protocol (lbfgs: continue them with L-BFGS; longer: 4x the steps; wider: "
        "twice the width; denser: 4x the collocation points); a rule whose harm then disappears is reported as hurting under this protocol, not "
        "as improper, and one whose harm survives is tried at 0.1, 0.01 and 0.001 of its weight: if it then helps, it is "
        "reported as weighted too heavily, not as improper (default: lbfgs)",
    )


def _training_options(s: argparse.ArgumentParser) -> None:
    """Options shared by ``scan`` and ``sweep``: method, preset and training budget, output."""
    s.add_argument(
        "--method",
        default="exact",
        choices=("exact", "finetune", "newton"),
        help="exact (train every subset), finetune (K steps per subset from one anchor) or newton "
        "(one second-order step per subset from an all-rules anchor); default exact",
    )
    s.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an estimator setting, repeatable: finetune: steps, anchor (data|all); newton: anchor "
        "(all|data), curvature (ggn|hessian), damping, cg_iterations, cg_tol, solve "
        "(shared|per_mask), anchor_step (true|false), refine_steps",
    )
    s.add_argument(
        "--preset",
        default="quick",
        help="training preset: quick (CPU, ~1 min; too short for the numbers to settle), standard (settled; "
        "minutes on a CPU) or paper (the paper's protocol; use a GPU) (default: quick)",
    )
    s.add_argument("--seeds", type=int, default=None, metavar="K", help="seeds (network init and data draw)")
    s.add_argument("--width", type=int, default=None, metavar="W", help="hidden units per layer of the preset's MLP")
    s.add_argument("--depth", type=int, default=None, metavar="D", help="hidden layers of the preset's MLP")
    s.add_argument("--activation", default=None, help="activation of the preset's MLP (tanh, sin, relu, jnp_sin)")
    s.add_argument("--learning-rate", type=float, default=None, metavar="LR", help="learning rate of the optimizer")
    s.add_argument("--steps", type=int, default=None, metavar="S", help="training steps per subset")
    s.add_argument("--check-every", type=int, default=None, metavar="C", help="early-stopping check interval (steps)")
    s.add_argument("--pretrain-steps", type=int, default=None, metavar="P", help="data-only warm-start steps")
    s.add_argument("--collocation", type=int, default=None, metavar="P", help="at most P collocation points per rule")
    s.add_argument(
        "--polish-steps",
        type=int,
        default=None,
        metavar="L",
        help="after the first optimizer, up to L L-BFGS steps per training (Adam then L-BFGS; default 0)",
    )
    s.add_argument(
        "--data-loss",
        default=None,
        choices=("mse", "relative_l2", "huber"),
        help="loss on the observations (default mse)",
    )
    s.add_argument(
        "--score",
        default=None,
        choices=("mse", "relative_l2", "max_error"),
        help="validation score that values each subset (default mse)",
    )
    s.add_argument(
        "--max-batch",
        type=int,
        default=None,
        metavar="B",
        help="at most B (subset, seed) trainings per compiled call (default: as many as fit in half the free memory)",
    )
    s.add_argument(
        "--vectorize",
        type=int,
        default=None,
        metavar="V",
        help="trainings run in lock-step (vmap) inside a call (default: chosen for the device)",
    )
    s.add_argument(
        "--devices",
        type=int,
        default=None,
        metavar="N",
        help="share every batch between the first N of this machine's devices (default: all of them; "
        "--max-batch and --vectorize count per device)",
    )
    s.add_argument(
        "--coalitions",
        default=None,
        choices=SAMPLERS,
        help="scan only: estimate RI from sampled coalitions instead of all 2^n, for many rules (needs --budget): "
        "regression-banzhaf (the most accurate), msr and kernel-banzhaf estimate the uniform (Banzhaf) RI, "
        "regression (the most accurate), permutation and kernel (paired KernelSHAP) the Shapley RI",
    )
    s.add_argument("--budget", type=int, default=None, metavar="B", help="with --coalitions: at most B coalitions")
    s.add_argument(
        "--target-se",
        type=float,
        default=None,
        metavar="SE",
        help="with --coalitions: stop once every rule's sampling se is at most SE decades",
    )
    s.add_argument("--sample-seed", type=int, default=0, metavar="K", help="with --coalitions: seed of the draws")
    s.add_argument(
        "--proxy",
        default=None,
        choices=("newton",),
        help="with --coalitions: a control variate: a Newton step from the all-rules training scores "
        "every coalition cheaply and the trained draws only correct it",
    )
    s.add_argument(
        "--proxy-budget",
        type=int,
        default=None,
        metavar="P",
        help="with --proxy, over 12 rules: coalitions the proxy scores (default 16 x --budget)",
    )
    s.add_argument(
        "--distributed",
        action="store_true",
        help="one of several processes (jax.distributed), the cluster detected by JAX: Slurm, Open MPI, "
        "TPU pods; process 0 prints and writes",
    )
    s.add_argument(
        "--coordinator",
        default=None,
        metavar="HOST:PORT",
        help="several processes without a detected cluster: process 0's address (with --num-processes "
        "and --process-id)",
    )
    s.add_argument("--num-processes", type=int, default=None, metavar="N", help="how many processes take part")
    s.add_argument("--process-id", type=int, default=None, metavar="I", help="this process's index, 0..N-1")
    s.add_argument(
        "--model",
        default=None,
        metavar="MODULE:FUNCTION",
        help="your own network: FUNCTION() returns a Flax Linen or NNX module, kvq.core.models.nnx_factory(...) "
        "or a pair (init, apply) (default: the preset's MLP)",
    )
    s.add_argument("--problem-seed", type=int, default=0, metavar="SEED", help="first seed (default 0)")
    s.add_argument(
        "--wrong",
        default=None,
        metavar="RULE",
        help="replace RULE by wrong knowledge (burgers: ic; equations: e_law; tlc: monotone), to test improper-rule "
        "flags",
    )
    s.add_argument(
        "--data-file",
        default=None,
        metavar="PATH",
        help="the measurements a problem is built from (tlc: an .xlsx of Rf values; needs pip install 'kvq[tlc]')",
    )
    s.add_argument("--out", default=None, metavar="DIR", help="results folder (default results/PROBLEM-PRESET[-sweep])")
    s.add_argument("--overwrite", action="store_true", help="replace a different scan already in DIR")
    s.add_argument("--no-plot", action="store_true", help="do not write figures")


PROBLEM_HELP = (
    "a built-in problem ({names}) or your own as MODULE:FUNCTION, a factory "
    "make(n_data, noise, split, seed) -> kvq.Problem (the current folder is importable)"
)


def _parser() -> _Parser:
    from kvq import problems

    p = _Parser(prog="kvq", description="Knowledge value quantification: how much is each rule worth?")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser(
        "scan",
        help="train every rule subset (or estimate it) and print rule importances",
        description="Exact scan: train the model with every subset of the problem's rules "
        "(all subsets and seeds batched), then print RI/FI and write results. "
        "--method finetune|newton estimates the same table from one anchor "
        "training (see the README's 'Which method' section).",
        epilog="examples:\n  kvq scan burgers --preset standard\n"
        "  kvq scan kdv --split extrapolation --data 100 --seeds 3 --out results/kdv-ood\n"
        "  kvq scan mymodule:make --data 50          # your own problem factory",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("problem", help=PROBLEM_HELP.format(names=", ".join(problems.names(measured=True))))
    _point_options(s)
    _training_options(s)
    _robustness_option(s)

    w = sub.add_parser(
        "sweep",
        help="scan across data volumes, noise levels and splits; trend tests",
        description="Run the rule-subset scan at every combination of --data, --noise and --split "
        "(exact scans of one split train as one batch), then print RI/FI per point and "
        "Mann-Kendall trend tests along each swept axis. Finished points are written as "
        "they complete; running the same command again resumes an interrupted sweep.",
        epilog="example:\n  kvq sweep burgers --data 0,10,100,1000 --split interpolation,extrapolation "
        "--preset standard",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    w.add_argument("problem", help=PROBLEM_HELP.format(names=", ".join(problems.names(measured=True))))
    w.add_argument("--data", default=None, metavar="N,N,...", help="observation counts, e.g. 0,10,100,1000")
    w.add_argument(
        "--noise", default=None, metavar="PCT,...", help="noise levels in %% of the solution's std, e.g. 0,25,50"
    )
    w.add_argument("--split", default=None, metavar="NAME,...", help="splits, e.g. interpolation,extrapolation")
    _training_options(w)
    _robustness_option(w)

    t = sub.add_parser(
        "tune",
        help="RI-guided rule weights: lambda_i <- lambda_i * 10^(mu * RI_i), with roll-back",
        description="Tune the rule weights by the paper's RI-guided update: scan at the current "
        "weights, multiply each weight by 10^(mu * RI); a step that raises the all-rules "
        "validation error is rolled back and mu halved. Each iteration's scan is saved; "
        "running the same command again resumes.",
        epilog="example:\n  kvq tune burgers --wrong ic --iterations 3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("problem", help=PROBLEM_HELP.format(names=", ".join(problems.names(measured=True))))
    t.add_argument(
        "--iterations", type=int, default=4, metavar="K", help="weight updates after the first scan (default 4)"
    )
    t.add_argument("--mu", type=float, default=1.0, help="step size mu of the update (default 1)")
    _point_options(t)
    _training_options(t)

    b = sub.add_parser(
        "bench",
        help="time kvq's engine on this machine (subset-steps/s, FLOP/s, scaling)",
        description="Train every rule subset of a problem for a fixed number of steps and time it: kvq's "
        "batched engine against its own one-subset-at-a-time loop, the FLOP/s achieved against a measured "
        "matmul peak, subset-steps/s as the batch and the number of devices grow, and the peak memory.",
        epilog="examples:\n  kvq bench                                   # Burgers, the paper's network, 1 000 points\n"
        "  kvq bench burgers --collocation 40000 --steps 500 --out bench.json   # paper size, on a GPU",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("problem", nargs="?", default="burgers", help="a built-in problem (default burgers)")
    b.add_argument("--preset", default="paper", help="whose network and optimizer (default paper: 5x50 sin, Adam)")
    b.add_argument(
        "--collocation", default="1000", metavar="P", help="collocation points per rule, or 'all' (default 1000)"
    )
    b.add_argument("--steps", type=int, default=100, metavar="S", help="steps per subset (default 100)")
    b.add_argument(
        "--repeats", type=int, default=3, metavar="R", help="timed passes per measurement (median; default 3)"
    )
    b.add_argument("--batch-sizes", default="1,4,16", metavar="B,...", help="batch sizes per device to compare")
    b.add_argument(
        "--devices", default=None, metavar="D,...", help="device counts to compare (default 1, 2, 4, ... up to all)"
    )
    b.add_argument("--out", default=None, metavar="FILE", help="also write the measurements as JSON")

    r = sub.add_parser(
        "report",
        help="write an HTML or Markdown report (with figures) of a results folder",
        description="Turn a results folder written by 'kvq scan', 'kvq sweep' or 'kvq tune' into a "
        "self-contained report with figures.",
        epilog="example:\n  kvq report results/burgers-quick            # -> results/burgers-quick/report.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("dir", help="a results folder")
    r.add_argument("--format", default="html", choices=("html", "md"), help="html (default; figures embedded) or md")
    r.add_argument("--out", default=None, metavar="FILE", help="report file (default DIR/report.html or DIR/report.md)")

    sub.add_parser(
        "problems",
        help="list the built-in problems and their rules",
        description="List every built-in problem: its equation, rules (global or local), splits and "
        "what its quick and standard presets train.",
        epilog="example:\n  kvq problems",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show = sub.add_parser(
        "show",
        help="print a saved scan, sweep or tuning run and the settings it was made with",
        description="Print the settings a saved run was made with (problem, data, noise, split, "
        "preset, method, versions) and its results: the importance table and "
        "verdicts of a scan, the per-point tables and trend tests of a sweep, the "
        "weight history of a tuning run.",
        epilog="examples:\n  kvq show results/burgers-quick\n  kvq show results/burgers-quick-sweep",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("dir", help="a folder written by 'kvq scan', 'kvq sweep' or 'kvq tune'")
    return p


def _model(args: argparse.Namespace):
    """The network ``--model MODULE:FUNCTION`` builds (None: the preset's MLP)."""
    if args.model is None:
        return None
    if ":" not in args.model:
        raise KvqError(f"--model needs MODULE:FUNCTION; got {args.model!r}")
    return _factory(args.model, "a model function")()


def _factory(target: str, what: str = "a problem factory"):
    """The function ``module:function`` names (the current folder is importable)."""
    import importlib

    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise KvqError(f"{target!r} is neither a built-in problem nor MODULE:FUNCTION ({what})")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise KvqError(f"cannot import module {module_name!r} for {what} {target!r}: {e}") from None
    make = getattr(module, attr, None)
    if not callable(make):
        raise KvqError(
            f"module {module_name!r} has no function {attr!r}"
            + (
                "; a problem factory is make(n_data, noise, split, seed) -> kvq.Problem"
                if what == "a problem factory"
                else f" ({what})"
            )
        )
    return make


def _is_factory(target: str) -> bool:
    return ":" in target


def _folder_name(target: str) -> str:
    """A results folder's stem for a built-in problem or ``module:function``."""
    return target.replace(":", "-").replace(".", "-")


def _config(args: argparse.Namespace):
    """The ScanConfig of the preset with the command line's overrides (a problem factory
    gets the generic presets)."""
    from kvq import problems
    from kvq.core.config import ScanConfig

    def preset(**overrides):
        if _is_factory(args.problem):
            return ScanConfig.preset(args.preset, **overrides)
        return problems.config(args.problem, args.preset, **overrides)

    names = (
        "seeds",
        "width",
        "depth",
        "activation",
        "learning_rate",
        "steps",
        "check_every",
        "pretrain_steps",
        "collocation",
        "max_batch",
        "vectorize",
        "devices",
        "polish_steps",
        "data_loss",
        "score",
    )
    overrides = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    if args.steps is not None and args.check_every is None and args.steps < preset().check_every:
        overrides["check_every"] = args.steps  # a short run: one check at the end
    return preset(**overrides)


def parse_settings(pairs: Sequence[str]) -> dict[str, Any]:
    """``["damping=1e-2", "solve=per_mask"]`` -> ``{"damping": 0.01, "solve": "per_mask"}``
    (numbers and true/false are converted)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise KvqError(f"estimator setting {pair!r} must look like NAME=VALUE")
        key, value = (s.strip() for s in pair.split("=", 1))
        low = value.lower()
        if low in ("true", "false"):
            out[key] = low == "true"
            continue
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


def _scan(args: argparse.Namespace, out: TextIO) -> int:
    """``kvq scan``: an exact scan, an estimate (``--method``) or sampled coalitions
    (``--coalitions``), resumed from (or loaded from) its ``--out`` folder."""
    from kvq.methods import Sampled, method_for
    from kvq.present.report import importance_table
    from kvq.workflows.pipeline import run

    if args.coalitions is not None and (args.method != "exact" or args.settings):
        raise KvqError("--coalitions trains each sampled coalition from the warm start; leave out --method/--set")
    if args.coalitions is not None and args.budget is None:
        raise KvqError("--coalitions needs --budget B: at most B distinct coalitions are trained")
    if args.proxy is not None and args.coalitions is None:
        raise KvqError("--proxy corrects sampled coalitions: give --coalitions and --budget too")
    problem = _problem(args)
    config = _config(args)
    options: dict[str, Any] = dict(parse_settings(args.settings))
    if args.coalitions is not None:
        options.update(
            coalitions=args.coalitions,
            budget=args.budget,
            target_se=args.target_se,
            sample_seed=args.sample_seed,
            proxy=args.proxy,
            proxy_budget=args.proxy_budget,
        )
    chosen = method_for(args.method, **options)
    suffix = f"-{args.coalitions}" if args.coalitions else ("" if args.method == "exact" else f"-{args.method}")
    outdir = Path(args.out or f"results/{_folder_name(args.problem)}-{args.preset}{suffix}")
    noise = problem.info.get("noise_pct", args.noise if args.noise is not None else 0)
    split = problem.info.get("split", args.split or "interpolation")
    n = len(problem.rules)
    if isinstance(chosen, Sampled):
        target = f", until every sampling se <= {chosen.target_se:g}" if chosen.target_se is not None else ""
        target += f", adjusted by a {chosen.proxy} proxy" if chosen.proxy else ""
        what = f"sampling {problem.name} ({n} rules -> at most {chosen.budget} of {2**n:,} coalitions"
        what += f" x {config.seeds} seed(s), {chosen.sampler}{target}"
    else:
        verb = "scanning" if args.method == "exact" else f"estimating ({args.method})"
        what = f"{verb} {problem.name} ({n} rules -> {2**n} subsets x {config.seeds} seed(s)"
    out.write(
        f"kvq: {what}, preset {args.preset}, {len(problem.train)} observations, noise {float(noise):g}%, "
        f"split {split})\n"
    )
    out.flush()
    progress = ProgressPrinter()

    events: list[str] = []

    def report(phase: str, done: int, total: int) -> None:
        events.append(phase)
        if phase == "loaded":
            out.write(f"kvq: {outdir}/ holds this run already; nothing to train (--overwrite does not retrain it)\n")
        elif phase == "resumed":
            out.write(f"kvq: resuming from the checkpoint in {outdir}/.checkpoint/\n")
        elif phase == "continued":
            out.write(
                f"kvq: {outdir}/ holds this scan at a shorter budget: the trainings it capped continue from their "
                "saved states, those that stopped early are reused\n"
            )
        else:
            progress(phase, done, total)

    model = _model(args)
    started = time.perf_counter()
    result = _warned(
        lambda: run(
            problem,
            config,
            chosen,
            progress=report,
            out=outdir,
            overwrite=args.overwrite,
            model=model,
            robustness=None if args.robustness == "off" else args.robustness,
        )
    )
    files = ["results.json", "table.npz", "table.csv"]
    if not args.no_plot:
        try:
            from kvq.present.plots import plot_importance

            plot_importance(result, outdir / "ri.png")
            files.append("ri.png")
            if result.check_steps is not None:
                from kvq.present.plots import plot_trajectory

                plot_trajectory(result, outdir / "ri-steps.png")
                files.append("ri-steps.png")
        except KvqError as e:
            sys.stderr.write(f"kvq: warning: no figure: {e}\n")
    t = result.timing
    out.write("\n" + importance_table(result, rerun=_rerun(args, config.steps * 2, outdir)) + "\n\n")
    rate = t["subset_steps_per_s"]
    speed = f"at {rate:,.0f} subset-steps/s" if rate else "all of it resumed from the checkpoint"
    timing = (
        f"{t['total_s']:.1f} s total ({t['compile_s']:.1f} s compiling, {t['train_s']:.1f} s training "
        f"{speed}, {t['programs']} program(s)) on {result.environment.get('device', '?')}"
    )
    if "loaded" in events:
        out.write(
            f"time: loaded from {outdir}/ in {time.perf_counter() - started:.1f} s; the saved run took {timing}\n"
        )
    else:
        out.write(f"time: {timing}\n")
    if result.estimator and result.method in ("finetune", "newton"):
        diag = result.estimator.get("diagnostics", {})
        cg = diag.get("cg_relative_residual_max")
        out.write(
            f"method: {result.method} {result.estimator['settings']}"
            + (f"; largest CG relative residual {cg:.2g}" if cg is not None else "")
            + "\n"
        )
    out.write(f"wrote {', '.join(files)} to {outdir}/\n")
    return 0


def _warned(run: Callable[[], Any]) -> Any:
    """``run()``, its RuntimeWarnings (diverged trainings, missing entries) printed as
    ``kvq: warning: ...`` lines on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        result = run()
    for w in caught:
        sys.stderr.write(f"kvq: warning: {w.message}\n")
    return result


def _rerun(args: argparse.Namespace, steps: int, outdir: Path) -> str:
    """This command line with ``--steps steps`` into the same ``--out``: the same scan, longer,
    continuing the trainings saved there (only the extra steps run)."""
    argv: list[str] = []
    skip = False
    for a in args.argv:
        if skip:
            skip = False
            continue
        if a in ("--steps", "--out"):
            skip = True
            continue
        if a.startswith(("--steps=", "--out=")) or a == "--overwrite":
            continue
        if argv and argv[-1] == "--process-id" or a.startswith("--process-id="):
            a = "I" if argv and argv[-1] == "--process-id" else "--process-id=I"  # every process, its own I
        argv.append(a)
    longer = " ".join(["kvq", *argv, "--steps", str(steps), "--out", str(outdir)])
    return f"{longer}\n  (continues the trainings saved in {outdir}/: only the extra steps run)"


def _list(text: str | None, cast, name: str) -> list | None:
    if text is None:
        return None
    try:
        return [cast(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise KvqError(f"--{name} takes comma-separated values like 0,10,100; got {text!r}") from None


def _sweep(args: argparse.Namespace, out: TextIO) -> int:
    from kvq import problems
    from kvq.present.report import sweep_table
    from kvq.workflows.sweeps import CHECKPOINTS, plan, sweep

    config = _config(args)
    settings = parse_settings(args.settings)
    data, noise, split = (
        _list(args.data, int, "data"),
        _list(args.noise, float, "noise"),
        _list(args.split, str, "split"),
    )
    target = _factory(args.problem) if _is_factory(args.problem) else args.problem
    axes, points = plan(target, data, noise, split)
    suffix = "" if args.method == "exact" else f"-{args.method}"
    outdir = Path(args.out or f"results/{_folder_name(args.problem)}-{args.preset}-sweep{suffix}")
    if (outdir / CHECKPOINTS).exists() or (outdir / "points").exists():
        out.write(f"kvq: resuming the sweep in {outdir}/ (finished points are kept)\n")
    subsets = (
        "every rule subset" if _is_factory(args.problem) else f"{2 ** len(problems.spec(args.problem).rules)} subsets"
    )
    out.write(
        f"kvq: sweeping {args.problem}: {len(points)} point(s) = data {axes['data']} x noise {axes['noise']}% "
        f"x split {axes['split']}; {subsets} x {config.seeds} seed(s) each, "
        f"preset {args.preset}, method {args.method}\n"
    )
    out.flush()
    result = _warned(
        lambda: sweep(
            target,
            config,
            data=data,
            noise=noise,
            split=split,
            method=args.method,
            model=_model(args),
            seed=args.problem_seed,
            out=outdir,
            overwrite=args.overwrite,
            progress=ProgressPrinter(),
            robustness=None if args.robustness == "off" else args.robustness,
            problem_options={k: v for k, v in (("wrong", args.wrong), ("data_file", args.data_file)) if v} or None,
            **settings,
        )
    )
    summary, trends = result.summary, result.trends
    files = ["sweep.json", "summary.csv", f"points/ ({len(points)} scan folders)"]
    if not args.no_plot:
        files += _sweep_figures(summary, axes, outdir)
    out.write("\n" + sweep_table(summary, trends, "ri") + "\n\n")
    out.write(sweep_table(summary, trends, "fi") + "\n\n")
    capped = [r["capped_share"] for r in summary if r.get("capped_share") is not None]
    if capped:
        out.write(f"trainings that ran into the step cap: {min(capped):.0%}-{max(capped):.0%} per point\n")
    unsettled = sorted({(r["rule"]) for r in summary if r.get("settled") is False})
    if unsettled:
        out.write(
            f"UNSETTLED at some points ('?'): {', '.join(unsettled)}; re-run with a longer budget: "
            f"{_rerun(args, config.steps * 2, outdir)}\n"
        )
    out.write(f"wrote {', '.join(files)} to {outdir}/ ('kvq report {outdir}' makes an HTML report)\n")
    return 0


def _sweep_figures(summary: list[dict], axes: dict[str, list], outdir: Path) -> list[str]:
    """RI against each swept numeric axis (one PNG per axis); a warning instead where matplotlib is missing."""
    written = []
    try:
        from kvq.present.plots import plot_sweep

        for axis in ("data", "noise"):
            if len(axes[axis]) >= 2:
                plot_sweep(summary, outdir / f"ri-{axis}.png", axis=axis, measure="ri")
                written.append(f"ri-{axis}.png")
    except KvqError as e:
        sys.stderr.write(f"kvq: warning: no figure: {e}\n")
    return written


def _problem(args: argparse.Namespace):
    from kvq import problems
    from kvq.workflows.sweeps import SweepPoint, build_point

    if _is_factory(args.problem):
        if args.wrong is not None:
            raise KvqError("--wrong is for the built-in problems; a factory builds the rules it is given")
        point = SweepPoint(args.data, 0.0 if args.noise is None else float(args.noise), args.split or "interpolation")
        return build_point(_factory(args.problem), point, args.problem_seed, {})
    options = {"seed": args.problem_seed}
    for key, value in (
        ("n_data", args.data),
        ("noise", args.noise),
        ("split", args.split),
        ("wrong", args.wrong),
        ("data_file", args.data_file),
    ):
        if value is not None:
            options[key] = value
    return problems.get(args.problem, **options)


def _tune(args: argparse.Namespace, out: TextIO) -> int:
    from kvq.present.report import tuning_table
    from kvq.workflows.tune import tune_weights

    problem = _problem(args)
    config = _config(args)
    settings = parse_settings(args.settings)
    outdir = Path(args.out or f"results/{_folder_name(args.problem)}-{args.preset}-tune")
    out.write(
        f"kvq: tuning the rule weights of {problem.name} ({len(problem.rules)} rules, {args.iterations} "
        f"update(s), mu {args.mu:g}; each iteration scans {2 ** len(problem.rules)} subsets x {config.seeds} "
        f"seed(s) by method {args.method})\n"
    )
    out.flush()
    result = _warned(
        lambda: tune_weights(
            problem,
            config,
            iterations=args.iterations,
            mu=args.mu,
            method=args.method,
            model=_model(args),
            out=outdir,
            overwrite=args.overwrite,
            progress=ProgressPrinter(),
            **settings,
        )
    )
    files = ["tune.json", f"iter-0..{args.iterations}/"]
    if not args.no_plot:
        try:
            from kvq.present.plots import plot_tuning

            plot_tuning(result.to_dict()["history"], outdir / "tuning.png")
            files.append("tuning.png")
        except KvqError as e:
            sys.stderr.write(f"kvq: warning: no figure: {e}\n")
    out.write("\n" + tuning_table(result.to_dict()) + "\n")
    out.write(f"wrote {', '.join(files)} to {outdir}/\n")
    return 0


def _bench(args: argparse.Namespace, out: TextIO) -> int:
    import json

    from kvq import problems
    from kvq.workflows.bench import as_json, bench, bench_table

    if args.problem not in problems.names():
        raise KvqError(f"unknown problem {args.problem!r}; known problems: {', '.join(problems.names())}")
    collocation = None if args.collocation == "all" else _list(args.collocation, int, "collocation")
    if collocation is not None and (len(collocation) != 1 or collocation[0] < 1):
        raise KvqError(f"--collocation takes a number of points >= 1 or 'all'; got {args.collocation!r}")

    def say(text: str) -> None:
        sys.stderr.write(f"kvq bench: {text}\n")
        sys.stderr.flush()

    result = bench(
        args.problem,
        args.preset,
        collocation=None if collocation is None else collocation[0],
        steps=args.steps,
        repeats=args.repeats,
        batch_sizes=_list(args.batch_sizes, int, "batch-sizes") or [],
        devices=_list(args.devices, int, "devices"),
        progress=say,
    )
    out.write(bench_table(result) + "\n")
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(as_json(result), indent=2) + "\n")
        out.write(f"wrote {path}\n")
    return 0


def _report(args: argparse.Namespace, out: TextIO) -> int:
    from kvq.present.document import write_report

    path = write_report(args.dir, fmt=args.format, out=args.out)
    out.write(f"wrote {path}\n")
    return 0


def _problems(out: TextIO) -> int:
    from kvq import problems

    for name in problems.names(measured=True):
        spec = problems.spec(name)
        quick, standard = problems.config(name, "quick"), problems.config(name, "standard")
        out.write(
            f"{name}: {spec.equation}\n"
            f"  inputs {', '.join(spec.inputs)} -> outputs {', '.join(spec.outputs)}; "
            f"{len(spec.rules)} rules = {2 ** len(spec.rules)} subsets; default {spec.n_data} observations\n"
            f"  rules: {', '.join(f'{r} ({kind})' for r, kind in spec.rules)}\n"
            f"  splits: {'; '.join(f'{s}: {meaning}' for s, meaning in spec.splits.items())}\n"
            f"  quick preset: {quick.depth}x{quick.width} {quick.activation}, {quick.steps} steps, "
            f"{quick.seeds} seeds{_settles(spec, 'quick')}\n"
            f"  standard preset: {standard.depth}x{standard.width} {standard.activation}, {standard.steps} steps, "
            f"{standard.seeds} seeds{_settles(spec, 'standard')}\n"
        )
    return 0


def _settles(spec, preset: str) -> str:
    """What ``benchmarks/settle.py`` measured about ``preset`` on a 2-core CPU, if anything."""
    note = spec.settles.get(preset)
    return f"; {note}" if note else ""


def _nearest_preset(problem: str, config: dict) -> str | None:
    """``"preset standard"``, ``"preset quick with steps=8000"`` (at most three settings
    changed) or None: the built-in preset that a saved config is, or is closest to."""
    from kvq import problems
    from kvq.core.config import MEMORY_ONLY, PRESETS

    if problem not in problems.names(measured=True):
        return None
    best = None
    for name in PRESETS:
        own = problems.config(problem, name).to_dict()
        changed = [k for k, v in own.items() if k not in MEMORY_ONLY and k in config and config[k] != v]
        if best is None or len(changed) < len(best[1]):
            best = (name, changed)
    if best is None or len(best[1]) > 3:
        return None
    name, changed = best
    return f"preset {name}" + (" with " + ", ".join(f"{k}={config[k]}" for k in changed) if changed else "")


def _settings_line(meta: dict) -> str:
    """Problem, data, noise, split, budget, seeds, method and versions of a saved run."""
    p, c = meta.get("problem") or {}, meta.get("config") or {}
    problem = p.get("name", p) if isinstance(p, dict) else p
    bits = [f"problem {problem}"]
    for key, label in (("n_data", "observations"), ("noise_pct", "noise %"), ("split", "split")):
        if isinstance(p, dict) and key in p:
            bits.append(f"{label} {p[key]}")
    model = c.get("model") or {}
    network = (
        f"{c.get('depth')}x{c.get('width')} {c.get('activation')}"
        if model.get("kind", "kvq.MLP") == "kvq.MLP"
        else model.get("kind", "?")
    )
    preset = _nearest_preset(problem, c) if isinstance(problem, str) and c else None
    if preset:
        bits.append(preset)
    bits += [
        f"network {network}",
        f"{c.get('steps')} steps",
        f"{c.get('seeds')} seeds",
        f"method {meta.get('method', 'exact')}",
    ]
    versions = (meta.get("environment") or {}).get("versions") or {}
    if versions:
        bits.append(", ".join(f"{k} {v}" for k, v in versions.items() if k in ("kvq", "jax") and v))
    return "; ".join(str(b) for b in bits)


def _show(args: argparse.Namespace, out: TextIO) -> int:
    import json

    from kvq.present.report import importance_table, sweep_table, tuning_table
    from kvq.store.results import folder_kind, load_result, read_folder

    folder = Path(args.dir)
    if folder_kind(folder) is None and (folder / "sampled.json").exists():  # written by an older kvq
        from kvq.game.table import SampledResult

        result = SampledResult.from_dict(json.loads((folder / "sampled.json").read_text()))
        out.write(f"sampled estimate: {result!r}\n\n{result.table()}\n")
        return 0
    kind, meta = read_folder(folder)
    if kind == "scan":
        out.write(f"scan: {_settings_line(meta)}\n\n{importance_table(load_result(folder))}\n")
    elif kind == "sweep":
        done = sum(1 for p in meta.get("points", []) if p.get("done"))
        out.write(
            f"sweep: {_settings_line(meta)}; axes {meta.get('axes')}; {done} of {len(meta.get('points', []))} "
            f"points done\n\n"
        )
        summary, trends = meta.get("summary", []), meta.get("trends", [])
        if summary:
            out.write(sweep_table(summary, trends, "ri") + "\n\n" + sweep_table(summary, trends, "fi") + "\n")
    else:
        out.write(f"tuning: {_settings_line(meta)}\n\n{tuning_table(meta)}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kvq`` console command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    out: TextIO = sys.stdout
    try:
        if getattr(args, "distributed", False) or getattr(args, "coordinator", None) is not None:
            from kvq.core.devices import is_writer, start_processes

            start_processes(args.coordinator, args.num_processes, args.process_id)
            if not is_writer():
                out = io.StringIO()  # process 0 prints; the others compute their share
        if args.command == "scan":
            return _scan(args, out)
        if args.command == "sweep":
            return _sweep(args, out)
        if args.command == "tune":
            return _tune(args, out)
        if args.command == "report":
            return _report(args, out)
        if args.command == "bench":
            return _bench(args, out)
        if args.command == "problems":
            return _problems(out)
        return _show(args, out)
    except KvqError as e:
        sys.stderr.write(f"kvq: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("\nkvq: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
