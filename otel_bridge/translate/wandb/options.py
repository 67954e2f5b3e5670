"""What the W&B Models translation is told: a plain value, so ``translate`` reads no settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    """What the translation depends on; the sink builds it from the settings (``wandb_options``)."""

    run_name: str | None = None
    tags: tuple[str, ...] = ()
    table_max_rows: int = 10_000
    log_artifact: bool = True
    files: tuple[str, ...] = ()
    capture_content: bool = True
    weave_project: str | None = None  # set when the Weave exporter runs too: cross-reference it
    wandb_base_url: str | None = None  # the W&B server of that cross-reference (None: the public one)
    # the samples table is held until the run ends: bounded in bytes too (``mapping.row_size``)
    table_max_bytes: int = 64 * 1024 * 1024
    table_cell_chars: int = 8_000  # input, target and output cut to this many characters (0: whole)
