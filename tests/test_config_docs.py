"""Every setting is declared once in ``otel_bridge.config``, documented there, and in the README's table."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from otel_bridge import config
from otel_bridge.config import GROUPS, declared_variables, load_settings

ROOT = Path(__file__).resolve().parent.parent


def readme_table_variables() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    return names


def test_every_declared_variable_is_in_the_readme_table() -> None:
    missing = set(declared_variables()) - readme_table_variables()
    assert not missing, f"README's configuration table lacks {sorted(missing)}"


def test_every_inspect_otel_variable_in_the_readme_is_declared() -> None:
    documented = {n for n in readme_table_variables() if n.startswith("INSPECT_OTEL_")}
    assert documented, "the README's configuration table was not found"
    unknown = documented - set(declared_variables())
    assert not unknown, f"README documents settings config.py does not declare: {sorted(unknown)}"


def test_every_setting_has_a_docstring() -> None:
    tree = ast.parse(Path(config.__file__).read_text(encoding="utf-8"))
    names = {cls.__name__ for cls in GROUPS}
    undocumented = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in names:
            body = node.body
            for i, stmt in enumerate(body):
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    nxt = body[i + 1] if i + 1 < len(body) else None
                    documented = isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    if not documented:
                        undocumented.append(f"{node.name}.{stmt.target.id}")
    assert not undocumented, undocumented


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"INSPECT_OTEL_EXPORTERS": "file,nope"}, "INSPECT_OTEL_EXPORTERS has unknown exporter 'nope'"),
        ({"INSPECT_OTEL_FLUSH_TIMEOUT": "soon"}, "INSPECT_OTEL_FLUSH_TIMEOUT='soon' is not a number"),
        ({"INSPECT_OTEL_WANDB_TABLE_MAX_ROWS": "1.5"}, "is not an integer"),
        ({"INSPECT_OTEL_WEAVE_PROJECT": "no-slash"}, "must be 'entity/project'"),
        ({"INSPECT_OTEL_CAPTURE_CONTENT": "maybe"}, "is not a boolean"),
    ],
)
def test_a_bad_value_is_one_message_and_the_default(env: dict[str, str], problem: str) -> None:
    settings = load_settings(env)
    assert len(settings.problems) == 1 and problem in settings.problems[0]


def test_secrets_never_appear_in_a_repr() -> None:
    settings = load_settings(
        {
            "WANDB_API_KEY": "k-secret-123456",
            "INSPECT_OTEL_RECEIVER_TOKEN": "t-secret-123456",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=h-secret-123456",
        }
    )
    assert settings.wandb.api_key == "k-secret-123456"
    text = repr(settings)
    assert "secret" not in text


def test_python_configuration_is_the_environment_by_another_route() -> None:
    from otel_bridge import api

    try:
        api.configure(exporters=[], span_dir="/tmp/x", capture_content=False, weave_project="e/p")
        settings = load_settings()
        assert settings.core.enabled and settings.core.exporters == ()
        assert settings.core.span_dir == Path("/tmp/x") and not settings.content.capture
        assert settings.weave.project == "e/p"
        assert config.environment()["INSPECT_OTEL_EXPORTERS"] == "none"  # what the workers inherit
    finally:
        api.reset()
    assert "INSPECT_OTEL_EXPORTERS" not in config.overlay()
