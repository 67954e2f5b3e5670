"""``otel-bridge``: show, sync, import and serve."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from otel_bridge import __version__


def _show(args: argparse.Namespace) -> int:
    from otel_bridge import spanfiles
    from otel_bridge.records import NotASpanFile
    from otel_bridge.show import show, summary_json

    path = args.path or spanfiles.latest()
    if path is None:
        print(
            f"otel-bridge: no span files in {spanfiles.default_dir()} (set INSPECT_OTEL_DIR or pass a path)",
            file=sys.stderr,
        )
        return 2
    path = Path(path)
    if path.is_dir():
        found = spanfiles.latest(path)
        if found is None:
            print(f"otel-bridge: no span files in {path}", file=sys.stderr)
            return 2
        path = found
    if not path.exists():
        print(f"otel-bridge: {path} does not exist", file=sys.stderr)
        return 2
    try:
        if args.json:
            from otel_bridge.show import RunView

            print(summary_json(RunView.load(path, max_samples=0)))
        else:
            show(path, max_depth=args.depth, max_samples=args.samples)
    except NotASpanFile as exc:
        print(f"otel-bridge: {exc}", file=sys.stderr)
        return 2
    return 0


def _sync(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from otel_bridge import notify, spanfiles
    from otel_bridge.config import load_settings
    from otel_bridge.records import NotASpanFile
    from otel_bridge.sync import TARGETS, parse_targets, sync_paths

    try:
        targets = parse_targets(args.to, TARGETS)
    except ValueError as exc:
        print(f"otel-bridge: {exc}", file=sys.stderr)
        return 2
    paths = spanfiles.expand([Path(p) for p in args.paths])
    missing = [p for p in paths if not p.exists()]
    if missing or not paths:
        print(f"otel-bridge: no span file at {', '.join(map(str, missing or args.paths))}", file=sys.stderr)
        return 2
    settings = load_settings()
    for problem in settings.problems:
        notify.say(problem)
    with Progress(TextColumn("syncing"), BarColumn(), DownloadColumn(), disable=args.quiet) as progress:
        task = progress.add_task("sync", total=sum(p.stat().st_size for p in paths))
        try:
            report = sync_paths(
                paths,
                targets,
                settings,
                on_progress=lambda done, total: progress.update(task, completed=done),
            )
        except NotASpanFile as exc:
            print(f"otel-bridge: {exc}", file=sys.stderr)
            return 2
    delivered = ", ".join(f"{n} spans to {t}" for t, n in report.delivered.items()) or "nothing"
    metrics = f", {report.metric_points} metric points to otlp" if report.metric_points else ""
    print(f"synced {report.spans} spans from {report.files} file(s): {delivered}{metrics}")
    for damage in report.damaged:
        print(f"warning: {damage}", file=sys.stderr)
    for problem in report.problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if report.problems else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otel-bridge", description="OpenTelemetry for Inspect AI evals.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    show = sub.add_parser("show", help="print a run's trace tree and results from its span file")
    show.add_argument("path", nargs="?", help="span file or directory (default: latest in INSPECT_OTEL_DIR)")
    show.add_argument("--depth", type=int, default=6, help="tree depth to expand (default 6)")
    show.add_argument("--samples", type=int, default=3, help="sample traces shown per task (default 3)")
    show.add_argument("--json", action="store_true", help="print the summary as JSON")
    show.set_defaults(func=_show)

    sync = sub.add_parser("sync", help="deliver span files to Weave, W&B or an OTLP endpoint")
    sync.add_argument("paths", nargs="+", help="span files or directories")
    sync.add_argument("--to", required=True, help="comma list of weave, wandb, otlp")
    sync.add_argument("--quiet", action="store_true", help="no progress bar")
    sync.set_defaults(func=_sync)

    from otel_bridge.backfill.command import add_import_command  # light: its work is imported on use

    add_import_command(sub)

    try:
        from otel_bridge.receiver.cli import add_serve_command
    except ImportError:
        pass
    else:
        add_serve_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
