"""The package's layering and size rules (docs/architecture.md), read from the source itself.

Layers, top to bottom; a module may import its own layer's modules only where listed, and any
layer below it, never one above::

    _registry, backfill/, cli → hook/ → pipeline (beside it: api, receiver/, sync, show)
      → exporters/, spanfactory → sinks/ → translate/ → records, conventions, config, ...
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "otel_bridge"
MAX_LINES = 450

# (level, module prefixes); the first matching prefix wins, so list the longer ones first
LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (6, ("otel_bridge._registry",)),
    (6, ("otel_bridge.backfill", "otel_bridge.cli")),  # above the hook they replay / run
    (5, ("otel_bridge.hook",)),
    (4, ("otel_bridge.pipeline", "otel_bridge.api", "otel_bridge.receiver", "otel_bridge.sync")),
    (4, ("otel_bridge.show",)),
    (3, ("otel_bridge.exporters", "otel_bridge.spanfactory", "otel_bridge.metrics")),
    (2, ("otel_bridge.sinks",)),
    (1, ("otel_bridge.translate",)),
    (0, ("otel_bridge",)),  # records, conventions, config, anyvalue, otlp_json, notify, ...
]

# imports allowed between different packages of one layer (beside each other, not above)
SIBLINGS = {
    ("otel_bridge.cli", "otel_bridge.backfill"),
    ("otel_bridge.exporters", "otel_bridge.spanfactory"),
}


def _unit(module: str) -> str:
    """The package or module a layer rule speaks of (``otel_bridge.receiver.core`` → ``receiver``)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def level(module: str, as_source: bool = False) -> int:
    if module == "otel_bridge":
        # the package facade: its names load lazily from above (as a source it is the top), while
        # what it holds eagerly (``__version__``) may be imported from anywhere
        return 7 if as_source else 0
    for lvl, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return lvl
    raise AssertionError(f"{module} is in no layer")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(source: str, package: str) -> list[str]:
    """Every otel_bridge module imported anywhere in ``source`` (function-level imports too)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").exists() or (
                    PACKAGE.parent / Path(*candidate.split("."))
                ).is_dir()
                found.append(candidate if is_module else base)
    return [m for m in found if m == "otel_bridge" or m.startswith("otel_bridge.")]


def violations(module: str, source: str, package: str) -> list[str]:
    out = []
    here = level(module, as_source=True)
    for target in imports(source, package):
        there = level(target)
        if there > here:
            out.append(f"{module} imports {target} (layer {there} above {here})")
        elif (
            there == here
            and here > 0
            and _unit(module) != _unit(target)
            and (_unit(module), _unit(target)) not in SIBLINGS
        ):
            out.append(f"{module} imports {target}, beside it in layer {here}")
    return out


def _sources() -> list[tuple[str, Path]]:
    return [(module_name(p), p) for p in sorted(PACKAGE.rglob("*.py"))]


def test_no_import_runs_back_up() -> None:
    problems: list[str] = []
    for module, path in _sources():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        problems.extend(violations(module, path.read_text(encoding="utf-8"), package))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("module", "source", "bad"),
    [
        ("otel_bridge.translate.weave.mapping", "from otel_bridge.config import Settings", False),
        ("otel_bridge.translate.weave.mapping", "def f():\n    from otel_bridge.sinks import base", True),
        ("otel_bridge.sinks.weave", "import otel_bridge.exporters.process", True),
        ("otel_bridge.receiver.core", "from otel_bridge import pipeline", True),
        ("otel_bridge.receiver.core", "from otel_bridge.sinks.base import RecordSink", False),
        ("otel_bridge.exporters.worker", "from otel_bridge.sinks.registry import make_record_sink", False),
        ("otel_bridge.config", "from otel_bridge.hook import hooks", True),
        ("otel_bridge.records", "from otel_bridge import __version__", False),
        ("otel_bridge.records", "from otel_bridge import api", True),
    ],
)
def test_the_layering_check_can_fail(module: str, source: str, bad: bool) -> None:
    assert bool(violations(module, source, module.rsplit(".", 1)[0])) is bad


def test_every_module_is_small() -> None:
    big = {m: n for m, p in _sources() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_translate_reads_no_settings_and_no_environment() -> None:
    for module, path in _sources():
        if not module.startswith("otel_bridge.translate"):
            continue
        source = path.read_text(encoding="utf-8")
        assert "os.environ" not in source and "getenv" not in source, module
        assert not any(t.startswith("otel_bridge.config") for t in imports(source, module)), module


def test_environment_is_read_in_config_only() -> None:
    readers = [
        module
        for module, path in _sources()
        if any(word in path.read_text(encoding="utf-8") for word in ("os.environ", "os.getenv"))
    ]
    assert readers == ["otel_bridge.config"], readers
