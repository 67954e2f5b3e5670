"""What the Weave sink writes and asks with weave's public API: op names, objects, bounded waits."""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable
from typing import Any

SYNC_HINT = "`otel-bridge sync <span file> --to weave`"
EVALUATE_OP = "Evaluation.evaluate"
PREDICT_AND_SCORE_OP = "Evaluation.predict_and_score"
PREDICT_OP = "Model.predict"
SUMMARIZE_OP = "Evaluation.summarize"
SCORE_META = {"imperative": True, "score": True}
FLUSH_EVERY_CALLS = 2_000  # bounded memory: wait for weave's queue after this many queued calls

# Weave settings for a client inside someone else's program: never patch their LLM libraries,
# never print links, give up on an unreachable server quickly.
WEAVE_SETTINGS: dict[str, Any] = {
    "print_call_link": False,
    "log_level": "WARNING",
    "implicitly_patch_integrations": False,
    "capture_code": False,
    "capture_client_info": False,
    "capture_system_info": False,
    "retry_max_attempts": 2,
    "retry_max_interval": 5.0,
    "http_timeout": 15.0,
}


class SampleError(Exception):
    """An Inspect sample or task error, carried into Weave's ``exception`` field."""


def ts(ns: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.UTC)


def inspect_attr(call: Any, key: str) -> Any:
    attrs = getattr(call, "attributes", None) or {}
    inspect_attrs = attrs.get("inspect") if hasattr(attrs, "get") else None
    if inspect_attrs is None or not hasattr(inspect_attrs, "get"):
        return None
    return inspect_attrs.get(key)


def bounded(fn: Callable[[], Any], timeout_s: float) -> bool:
    """Run a possibly blocking weave call for at most ``timeout_s`` (daemon thread)."""
    done = threading.Event()

    def run() -> None:
        try:
            fn()
        except Exception:
            pass
        finally:
            done.set()

    threading.Thread(target=run, name="otel-bridge-weave-flush", daemon=True).start()
    deadline = time.monotonic() + max(0.0, timeout_s)
    return done.wait(max(0.0, deadline - time.monotonic()))


_CLASSES: tuple[Any, Any] | None = None


def weave_classes() -> tuple[Any, Any]:
    """Model / Scorer subclasses holding Inspect's fields (weave objects forbid extra fields)."""
    global _CLASSES
    if _CLASSES is None:
        import weave

        class InspectModel(weave.Model):
            """An Inspect model: its name and generation settings, as the Evals tab shows them."""

            model: str
            generate_config: dict[str, Any] = {}
            model_args: dict[str, Any] = {}
            base_url: str | None = None
            roles: dict[str, Any] = {}

        class InspectScorer(weave.Scorer):
            """An Inspect scorer by name (Inspect ran it; Weave only records its scores)."""

        _CLASSES = (InspectModel, InspectScorer)
    return _CLASSES
