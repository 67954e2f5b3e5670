"""Keep secrets out of every exported byte.

Two mechanisms: keys that look secret are replaced in structured values (model args, task
args, metadata), and the values of secret-looking environment variables are replaced wherever
they occur in any string the bridge emits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"
_SECRET_KEY = re.compile(
    r"(api[_-]?key|apikey|token|secret|password|passwd|credential|auth|private[_-]?key|headers?|cookie|"
    r"access[_-]?key|session[_-]?key)",
    re.IGNORECASE,
)
_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION)", re.IGNORECASE)
_MIN_SECRET_LEN = 8


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


class Redactor:
    """Built once per run from the environment; cheap when there is nothing to hide."""

    def __init__(self, env: Mapping[str, str], extra: tuple[str, ...] = ()) -> None:
        source = env
        values = {v for k, v in source.items() if _SECRET_ENV.search(k) and len(v) >= _MIN_SECRET_LEN} | {
            v for v in extra if len(v) >= _MIN_SECRET_LEN
        }
        # also the JSON-escaped form: content is redacted after it has been serialised
        values |= {json.dumps(v)[1:-1] for v in values}
        # longest first so a secret containing another is replaced whole
        ordered = sorted(values, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None

    def text(self, value: str) -> str:
        if self._pattern is None or not value:
            return value
        return self._pattern.sub(REDACTED, value)

    def structure(self, value: Any) -> Any:
        """Redact secret-named keys and secret values in a JSON-like structure."""
        if isinstance(value, Mapping):
            return {
                str(k): (REDACTED if is_secret_key(str(k)) and v not in (None, "") else self.structure(v))
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self.structure(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value
