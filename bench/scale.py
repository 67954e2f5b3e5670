"""Scale: `show` and `sync` on 1k-, 10k- and 100k-sample span files, time per sample and peak RSS.

    make bench-scale      # or: .venv/bin/python bench/scale.py --sizes 1000,10000,100000

Records a real eval's span file (examples/bridge_demo.py@arithmetic on the two offline models,
3 samples × 2 epochs: 12 sample traces, 173 spans), clones its sample traces into files of each
size (bench/scale_spans.py: fresh ids, counts scaled), then runs, one at a time in fresh
processes: `otel-bridge show FILE --depth 1`, `otel-bridge sync FILE --to wandb` (offline W&B)
and `otel-bridge sync FILE --to weave` (the local Weave test server, tests/weave_server); feeds
the file's export requests to `otel-bridge serve --to file|wandb|weave` over OTLP/HTTP from
four concurrent senders (bench/scale_receiver.py: "ingest spans/s" = accepted — decoded,
spooled, fsynced, acknowledged; "translate spans/s" = delivered by the sink worker); and runs a
real eval of `--live-samples` samples bridge off and on with the default sinks (wall on/off,
spans dropped). Each row: wall time, time per sample, CPU
and peak RSS of the command's own process (from wait4's rusage: the W&B SDK's wandb-core
service and the Weave server are separate processes, not counted).
The last two columns compare with the smallest size ("per sample ×": time per sample, "RSS
×": peak RSS). Targets (issue 12): per-sample time at the largest size ≤ 1.3× that at the smallest, peak RSS
≤ 1.5× and ≤ 500 MB. Results are recorded in docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scale_receiver import SENDERS, ingest, live  # noqa: E402
from bench.scale_spans import scale  # noqa: E402

BIN = Path(sys.executable).parent
OTEL_BRIDGE = str(BIN / "otel-bridge")


def record(root: Path) -> Path:
    """A real eval's span file, recorded by the bridge's file exporter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSPECT_OTEL_", "WANDB_", "WEAVE_"))}
    env.update(INSPECT_OTEL_ENABLED="1", INSPECT_OTEL_EXPORTERS="file", INSPECT_OTEL_DIR=str(root / "spans"))
    subprocess.run(
        [
            str(BIN / "inspect"),
            "eval",
            str(ROOT / "examples/bridge_demo.py") + "@arithmetic",
            "--model",
            "offline/careful,offline/hasty",
            "-T",
            "samples=3",
            "--epochs",
            "2",
            "--log-dir",
            str(root / "logs"),
            "--display",
            "none",
        ],
        env=env,
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    (path,) = (root / "spans").glob("*.jsonl")
    return path


def measure(args: list[str], env: dict[str, str]) -> tuple[float, float, float, int]:
    """Wall seconds, CPU seconds and peak RSS (MB) of the command's process, and its exit code."""
    started = time.monotonic()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    if proc.stderr is not None:
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        if status:
            print(err[-2000:], file=sys.stderr)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode


RATES: dict[tuple[str, int], tuple[float, float]] = {}  # receiver rows: (ingest, translate) spans/s
RECEIVER_SINKS = {"receiver": "file", "receiver-wandb": "wandb", "receiver-weave": "weave"}


def wandb_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSPECT_OTEL_", "WANDB_", "WEAVE_"))}
    env.update(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DIR=str(root),
        WANDB_DATA_DIR=str(root / "data"),
        WANDB_CACHE_DIR=str(root / "cache"),
        WANDB_CONFIG_DIR=str(root / "config"),
        INSPECT_OTEL_WANDB_PROJECT="scale-bench",
        HOME=str(root),
    )
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description="show / sync at scale")
    parser.add_argument("--sizes", default="1000,10000,100000", help="samples per file, comma list")
    parser.add_argument(
        "--commands",
        default="show,wandb,weave,receiver,receiver-wandb,receiver-weave,live",
        help="comma list of show, wandb, weave, receiver (serve --to file), receiver-wandb, "
        "receiver-weave, live (a real eval, bridge off and on)",
    )
    parser.add_argument("--live-samples", type=int, default=20_000, help="samples of the live eval")
    parser.add_argument(
        "--receiver-sizes",
        default="1000,10000,100000",
        help="the sizes the receiver rows run at (the senders stream their requests from disk)",
    )
    parser.add_argument(
        "--receiver-cpus",
        default="0",
        help="CPUs the receiver process is pinned to (comma list; empty: not pinned)",
    )
    parser.add_argument(
        "--weave-sizes",
        default="1000,10000",
        help="the sizes `sync --to weave` runs at (the Weave SDK's ~40 ms a sample: 100k is over an hour)",
    )
    parser.add_argument("--source", type=Path, help="a recorded span file (default: record one)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    commands = args.commands.split(",")
    weave_sizes = {int(s) for s in args.weave_sizes.split(",")}
    receiver_sizes = {int(s) for s in args.receiver_sizes.split(",")}
    cpus = {int(c) for c in args.receiver_cpus.split(",") if c.strip()} or None
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    server = None
    try:
        source = args.source or record(work / "source")
        lived = live(args.live_samples, work / "live") if "live" in commands else None
        if "weave" in commands or "receiver-weave" in commands:
            from tests.weave_server.harness import WeaveServer

            server = WeaveServer().start()
        results: dict[tuple[str, int], tuple[float, float, float, int]] = {}
        for size in sizes:
            path = work / f"spans-{size}.jsonl"
            scale(source, path, size)
            mb = path.stat().st_size / 1e6
            print(f"{size} samples: {mb:.0f} MB", file=sys.stderr, flush=True)
            for command in commands:
                if command == "live" or (command.endswith("weave") and size not in weave_sizes):
                    continue
                if command in RECEIVER_SINKS and size not in receiver_sizes:
                    continue
                run_root = work / f"{command}-{size}"
                run_root.mkdir()
                if command in RECEIVER_SINKS:
                    sink = RECEIVER_SINKS[command]
                    if sink == "weave":
                        assert server is not None
                        env = server.env("bench", f"serve-{size}")
                        env["INSPECT_OTEL_WEAVE_PROJECT"] = f"bench/serve-{size}"
                    else:
                        env = wandb_env(run_root)
                    results[(command, size)], RATES[(command, size)] = ingest(path, run_root, sink, env, cpus)
                elif command == "show":
                    env = dict(os.environ)
                    results[(command, size)] = measure([OTEL_BRIDGE, "show", str(path), "--depth", "1"], env)
                elif command == "wandb":
                    env = wandb_env(run_root)
                    argv = [OTEL_BRIDGE, "sync", str(path), "--to", "wandb", "--quiet"]
                    results[(command, size)] = measure(argv, env)
                else:
                    assert server is not None
                    env = server.env("bench", f"scale-{size}")
                    env["INSPECT_OTEL_WEAVE_PROJECT"] = f"bench/scale-{size}"
                    argv = [OTEL_BRIDGE, "sync", str(path), "--to", "weave", "--quiet"]
                    results[(command, size)] = measure(argv, env)
                wall, cpu, rss, code = results[(command, size)]
                print(
                    f"  {command}: {wall:.1f} s, {cpu:.1f} s CPU, {rss:.0f} MB, exit {code}",
                    file=sys.stderr,
                    flush=True,
                )
                shutil.rmtree(run_root, ignore_errors=True)
            if not args.keep:
                path.unlink()
        print_table(results, sizes, commands, lived, cpus)
    finally:
        if server is not None:
            server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def print_table(
    results: dict[tuple[str, int], tuple[float, float, float, int]],
    sizes: list[int],
    commands: list[str],
    lived: dict[str, dict[str, float]] | None,
    cpus: set[int] | None,
) -> None:
    pinned = f"receiver pinned to CPU {','.join(map(str, sorted(cpus)))}" if cpus else "receiver not pinned"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"load average at the end {load}"
    )
    head = (
        "command",
        "samples",
        "wall",
        "per sample",
        "CPU",
        "peak RSS",
        "exit",
        "per sample ×",
        "RSS ×",
        "ingest spans/s",
        "translate spans/s",
        "notes",
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    label = {
        "show": "show --depth 1",
        "wandb": "sync --to wandb (offline)",
        "weave": "sync --to weave (local)",
        "receiver": "serve --to file",
        "receiver-wandb": "serve --to wandb (offline)",
        "receiver-weave": "serve --to weave (local)",
    }
    for command in commands:
        done = [size for size in sizes if (command, size) in results]
        if not done:
            continue
        base_wall, _, base_rss, _ = results[(command, done[0])]
        for size in done:
            wall, cpu, rss, code = results[(command, size)]
            per = wall / size
            ratio = per / (base_wall / done[0])
            rates = RATES.get((command, size))
            cells = (
                label[command],
                f"{size:,}",
                f"{wall:.1f} s",
                f"{per * 1e3:.2f} ms",
                f"{cpu:.1f} s",
                f"{rss:.0f} MB",
                str(code),
                f"{ratio:.2f}",
                f"{rss / base_rss:.2f}",
                f"{rates[0]:,.0f}" if rates else "",
                f"{rates[1]:,.0f}" if rates else "",
                f"{SENDERS} senders; {pinned}; wall = until all delivered" if rates else "",
            )
            print("| " + " | ".join(cells) + " |")
    if lived is not None:
        off, on = lived["off"], lived["on"]
        for name, row in (("live eval, bridge off", off), ("live eval, default sinks", on)):
            n = int(row["samples"])
            notes = ""
            if row is on:
                notes = (
                    f"wall on/off {on['ratio']:.2f}; spans {on['spans']:,.0f} of {on['expected']:,.0f} "
                    f"expected; dropped {on['dropped']:.0f}"
                )
            cells = (
                name,
                f"{n:,}",
                f"{row['wall']:.1f} s",
                f"{row['wall'] / n * 1e3:.2f} ms",
                f"{row['cpu']:.1f} s",
                f"{row['rss_mb']:.0f} MB",
                "0",
                "",
                "",
                "",
                "",
                notes,
            )
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
