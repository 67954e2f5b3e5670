"""``otel-bridge import`` on large logs: time and peak memory against the number of samples.

    .venv/bin/python bench/import_logs.py                    # 1,000 and 10,000 samples
    .venv/bin/python bench/import_logs.py --samples 500 2000

For each size, one eval of ``arithmetic_quick`` on the offline model writes an ``.eval`` log
(bridge off; cached under the temp dir between invocations), then ``otel-bridge import`` turns it
into a span file in a fresh process. The table shows the import's wall time, samples and spans
per second, and its peak RSS, beside the peak RSS of reading the same log whole with Inspect's
``read_eval_log`` (what an import that did not stream samples would hold at least). Peak RSS that
stays flat while samples grow tenfold is the "memory bounded" claim of docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CACHE = Path(tempfile.gettempdir()) / "otel-bridge-bench-import"

WRITE = r"""
import sys
sys.path.insert(0, {examples!r})
from bridge_demo import arithmetic_quick
from inspect_ai import eval
from inspect_ai.model import get_model
(log,) = eval(arithmetic_quick(samples={n}), model=get_model("offline/careful"), display="none",
              log_dir={log_dir!r}, max_samples=64)
assert log.status == "success", log.status
"""

READ_WHOLE = r"""
import json, resource, sys
from inspect_ai.log import read_eval_log
log = read_eval_log(sys.argv[1])
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"samples": len(log.samples), "rss_mb": rss_mb}))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSPECT_OTEL_", "OTEL_", "WANDB_"))}
    env["INSPECT_OTEL_ENABLED"] = "0"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "examples")])
    return env


def log_for(n: int) -> Path:
    log_dir = CACHE / f"samples-{n}"
    found = sorted(log_dir.glob("*.eval"))
    if found:
        return found[-1]
    code = WRITE.format(examples=str(ROOT / "examples"), n=n, log_dir=str(log_dir))
    subprocess.run([sys.executable, "-c", code], env=_env(), check=True)
    return sorted(log_dir.glob("*.eval"))[-1]


def _child_rss_mb(args: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and stdout of one child process (run alone, so the
    children's maximum RSS is this child's)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args], env=_env(), capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - started
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return seconds, float(report["rss_mb"]), report["stdout"]


_MEASURE = r"""
import json, resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
if proc.returncode != 0:
    sys.exit(proc.stderr)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"rss_mb": rss, "stdout": proc.stdout}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    rows = []
    for n in args.samples:
        log = log_for(n)
        with tempfile.TemporaryDirectory() as out:
            command = [str(BIN / "otel-bridge"), "import", str(log), "--dir", out, "--quiet"]
            seconds, rss, stdout = _child_rss_mb(command)
            spans = int(stdout.rsplit("imported ", 1)[1].split(" spans", 1)[0])
        _, whole_rss, _ = _child_rss_mb([sys.executable, "-c", READ_WHOLE, str(log)])
        rows.append((n, log.stat().st_size / 1e6, seconds, n / seconds, spans / seconds, rss, whole_rss))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; children's peak RSS via getrusage")
    print()
    print("| samples | log MB | import s | samples/s | spans/s | import peak RSS MB", end="")
    print(" | whole read, peak RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n, mb, seconds, sps, spps, rss, whole in rows:
        print(f"| {n:,} | {mb:.1f} | {seconds:.1f} | {sps:,.0f} | {spps:,.0f} | {rss:.0f} | {whole:.0f} |")


if __name__ == "__main__":
    main()
