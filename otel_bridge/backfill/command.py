"""``otel-bridge import``: its arguments, progress bar and report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Turn existing Inspect logs into the spans the bridge's hook would have recorded live, by
replaying each log's events through the hook's own span building (same names, attributes,
events and timestamps; docs/conventions.md, "Imported logs", lists what only a live run knows).

PATH is a log file (.eval or .json), a directory (searched recursively) or anything Inspect's
log reading accepts (e.g. s3://bucket/logs with Inspect's fsspec extra). Logs are grouped into
runs by their run id, as live: one span file per run, named as live, in INSPECT_OTEL_DIR (or
--dir). Importing again, or importing a run that was traced live, adds only the spans the run's
span file lacks; Weave and W&B rows are keyed on Inspect's ids, so nothing is written twice.
A log re-scored with `inspect score` (which fires no hooks) replaces the Weave evaluation the
run already has with a new revision holding the new scores and metrics (docs/weave.md,
"Re-scoring"); a span file that holds the run keeps its old scores (a note says so).
Exit status: 0 when everything was imported, 1 when anything could not be read or delivered
(everything readable is still imported), 2 on bad arguments."""


def add_import_command(sub: Any) -> None:
    """Register ``import`` on the ``otel-bridge`` subparsers."""
    parser = sub.add_parser(
        "import",
        help="turn existing Inspect logs into spans (span files, Weave, W&B, OTLP)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="Inspect log files or directories")
    parser.add_argument(
        "--to",
        default="file",
        help="comma list of file, weave, wandb, otlp (default: file); weave, wandb and otlp are "
        "delivered as `otel-bridge sync` does, with the same settings (WANDB_*, OTEL_EXPORTER_OTLP_*)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where span files go (default: INSPECT_OTEL_DIR, else ./otel-spans)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the runs, tasks, samples and spans the import would produce; write nothing",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar, only the summary and problems")
    parser.set_defaults(func=run)


class _Bar:
    """A rich progress bar over logs and samples (the Progress protocol of ``importer``)."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.logs_task = progress.add_task("logs", total=None)
        self.samples_task = progress.add_task("samples", total=None)

    def logs(self, total: int) -> None:
        self.progress.update(self.logs_task, total=total)

    def log(self, location: str, samples: int) -> None:
        self.progress.advance(self.logs_task)
        self.progress.reset(self.samples_task, total=samples or None, description=Path(location).name)

    def sample(self) -> None:
        self.progress.advance(self.samples_task)


def run(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from otel_bridge import notify
    from otel_bridge.backfill.importer import TARGETS, import_paths
    from otel_bridge.config import load_settings
    from otel_bridge.sync import parse_targets

    try:
        targets = parse_targets(args.to, TARGETS)
    except ValueError as exc:
        print(f"otel-bridge: {exc}", file=sys.stderr)
        return 2
    settings = load_settings()
    for problem in settings.problems:
        notify.say(problem)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, disable=args.quiet, transient=True, console=_stderr_console()) as progress:
        report = import_paths(args.paths, targets, settings, args.dir, args.dry_run, _Bar(progress))
    _print_report(report, args.dry_run, args.quiet)
    return 1 if report.problems else 0


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _print_report(report: Any, dry_run: bool, quiet: bool) -> None:
    for run in report.runs:
        where = f" (eval set {run.eval_set_id})" if run.eval_set_id else ""
        files = ", ".join(map(str, run.paths))
        already = f", {run.already} already in {files}" if run.already else ""
        target = "" if dry_run or not run.paths else f" → {files}"
        print(f"run {run.run_id}{where}: {len(run.tasks)} task(s), {run.spans} span(s){already}{target}")
        if dry_run or not quiet:
            for task in run.tasks:
                print(
                    f"  {task.task} · {task.model} [{task.status}]: "
                    f"{task.samples} sample(s), {task.spans} span(s)  {task.location}"
                )
    verb = "would import" if dry_run else "imported"
    delivered = ", ".join(f"{n} spans to {t}" for t, n in report.delivered.items())
    print(
        f"{verb} {report.spans} spans from {report.samples} samples in {report.logs} log(s), "
        f"{len(report.runs)} run(s)"
        + (f": {delivered}" if delivered else "")
        + ("; nothing written" if dry_run else "")
    )
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for name in report.not_logs:
        print(f"skipped (not an Inspect log): {name}", file=sys.stderr)
    for problem in report.problems:
        print(f"error: {problem}", file=sys.stderr)
