"""The W&B environment both W&B destinations share: credentials, server, projects.

One rule for "are we logged in": the Weave and Models sinks must never disagree on it (one would
prompt, or go offline, while the other uploads). It mirrors where the W&B SDKs look: an API key,
a workload-identity token file, or a netrc entry (``NETRC``, else ``~/.netrc`` / ``~/_netrc``)
for the API host of ``WANDB_BASE_URL``.
"""

from __future__ import annotations

import netrc
from pathlib import Path
from urllib.parse import urlparse

from otel_bridge.config import WANDB_DEFAULT_PROJECT, Settings, WandbSettings


def api_host(w: WandbSettings) -> str:
    """The netrc machine name both SDKs look up: the base URL's ``host[:port]``."""
    return urlparse(w.base_url).netloc or "api.wandb.ai"


def _netrc_files(w: WandbSettings) -> list[Path]:
    if w.netrc is None:
        return []
    return [w.netrc, w.netrc.with_name("_netrc")] if w.netrc.name == ".netrc" else [w.netrc]


def credentials_problem(w: WandbSettings) -> str | None:
    """Why the W&B SDKs would have to prompt for a key (None when credentials exist)."""
    if w.api_key or w.identity_token_file:
        return None
    host = api_host(w)
    for path in _netrc_files(w):
        try:
            if path.is_file() and netrc.netrc(str(path)).authenticators(host):
                return None
        except (netrc.NetrcParseError, OSError):
            continue
    return f"no W&B credentials for {host} (set WANDB_API_KEY or run `wandb login`)"


def has_credentials(w: WandbSettings) -> bool:
    return credentials_problem(w) is None


def choose_mode(w: WandbSettings) -> str:
    """``offline`` unless an online run can start without a prompt (or W&B is disabled)."""
    if w.mode == "disabled":
        return "disabled"
    if w.mode in {"offline", "dryrun"} or not has_credentials(w):
        return "offline"
    return "online"


def run_project(settings: Settings) -> tuple[str, str | None]:
    """(project, entity) of the W&B Models runs: INSPECT_OTEL_WANDB_PROJECT may be entity/project."""
    raw = settings.wandb.project or WANDB_DEFAULT_PROJECT
    entity = settings.wandb.entity
    if "/" in raw:
        entity, raw = raw.split("/", 1)
    return raw, entity or None


def run_project_path(settings: Settings) -> str:
    """``entity/project`` (or ``project``) of the Models runs, for links from Weave."""
    project, entity = run_project(settings)
    return f"{entity}/{project}" if entity else project


def models_run_expected(settings: Settings) -> bool:
    """Whether a W&B Models run will hold this eval: the wandb exporter runs here, or a W&B project
    is configured (a receiver or a later ``sync --to wandb`` writes the run under the same id)."""
    return "wandb" in settings.core.exporters or settings.wandb.project is not None
