"""Keep secrets out of every exported byte, and content out when content capture is off.

``Redactor`` knows what a secret looks like: the values of secret-named environment variables
(re-read whenever the environment changes), string values under secret-looking keys (in JSON,
``key=value`` and ``key: value`` text), well-known token shapes, and the user's own patterns
(``INSPECT_OTEL_REDACT_PATTERNS``). ``Scrubber`` is the one pass at the edge: every string
attribute, event attribute and status description of every span goes through it before any
exporter sees the span (docs/conventions.md, "Redaction" and "Content off").
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.trace import Status, StatusCode

from otel_bridge import conventions as c

REDACTED = "[REDACTED:secret_key]"  # the value of a secret-looking key, anywhere
CONTENT_OFF = "[REDACTED:content]"
_SECRET_WORDS = (
    "api_key", "api-key", "apikey", "token", "secret", "password", "passwd", "credential", "auth",
    "private_key", "private-key", "access_key", "access-key", "session_key", "cookie",
)  # fmt: skip
# tokens, tokenizer, token_count, author (but authorization is a secret's key)
_NOT_SECRET_AFTER = ("s", "izer", "_count", "count", "_limit", "or")
_SECRET_KEY = re.compile(
    "|".join([*(w for w in _SECRET_WORDS if w not in {"token", "auth"}), "headers?", "cookie"])
    + r"|token(?!s|izer|_?count|_?limit)|auth(?!or(?!iz))",
    re.IGNORECASE,
)
_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION)", re.IGNORECASE)
_MIN_SECRET_LEN = 8
_CLEAN_CHARS = 8_000_000  # what the known-clean strings may hold before they are forgotten
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")

# Well-known token shapes: (reason, anchor, regex matched where the anchor is, starts at a word
# edge). Python's regex alternation costs ~50-100 ns a byte; str.find on the anchors costs ~1, so
# a regex only runs where its anchor occurs.
_SHAPES: tuple[tuple[str, str, str, bool], ...] = (
    ("openai_key", "sk-", r"sk-(ant-)?[A-Za-z0-9_-]{16,}", True),  # group 1: anthropic_key
    ("google_key", "AIza", r"AIza[0-9A-Za-z_-]{30,}", True),
    ("hf_token", "hf_", r"hf_[A-Za-z0-9]{20,}", True),
    ("github_token", "ghp_", r"ghp_[A-Za-z0-9]{20,}", True),
    ("github_token", "gho_", r"gho_[A-Za-z0-9]{20,}", True),
    ("github_token", "ghu_", r"ghu_[A-Za-z0-9]{20,}", True),
    ("github_token", "ghs_", r"ghs_[A-Za-z0-9]{20,}", True),
    ("github_token", "ghr_", r"ghr_[A-Za-z0-9]{20,}", True),
    ("github_token", "github_pat_", r"github_pat_[A-Za-z0-9_]{20,}", True),
    ("aws_key_id", "AKIA", r"AKIA[0-9A-Z]{16}(?![A-Za-z0-9])", True),
    ("aws_key_id", "ASIA", r"ASIA[0-9A-Z]{16}(?![A-Za-z0-9])", True),
    ("jwt", "eyJ", r"eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}", False),
    # "Bearer <token>": a token of 16+ characters with a digit in it (not "the bearer understands")
    ("bearer", "earer", r"earer\s+(?=[A-Za-z._~+/=-]*[0-9])[A-Za-z0-9._~+/=-]{16,}", False),
    ("bearer", "EARER", r"EARER\s+(?=[A-Za-z._~+/=-]*[0-9])[A-Za-z0-9._~+/=-]{16,}", False),
    ("url_credentials", "://", r"://[^/\s:@\"']+:[^/\s@\"']+@", False),
)
# every secret word holds one of these stems: a text holding none of them holds no secret key
_STEMS = ("key", "token", "secret", "passw", "credential", "auth", "cookie")
assert all(any(stem in word for stem in _STEMS) for word in _SECRET_WORDS)
# every anchor of a token shape: a text holding none of them holds no token
_ANCHORS = tuple(dict.fromkeys(anchor for _, anchor, _, _ in _SHAPES))
_ALNUM_ANCHORS = tuple(a for a in _ANCHORS if a.isalnum())
# after a secret word: the rest of the key, its separator, and the value it holds (JSON, escaped
# JSON, Python repr, key=value); a JSON number (a token count) is no secret
_KEY_VALUE = re.compile(
    r"[A-Za-z0-9_.-]*(?:\\?[\"'])?(?:\s*[:=]\s*(?=[\"'\\])|=)"
    r"(\"(?:[^\"\\]|\\.)*\"|\\\"(?:[^\"\\]|\\[^\"])*\\\"|'[^']*'|[^\s,;&\"'}\])]+)"
)


def parse_patterns(raw: str) -> tuple[tuple[str, ...], list[str]]:
    """INSPECT_OTEL_REDACT_PATTERNS (a JSON list of regexes, or one per line) → (patterns, problems).

    A bad pattern is skipped with a problem that does not show it (it may spell out a secret).
    """
    name = "INSPECT_OTEL_REDACT_PATTERNS"
    try:
        items = json.loads(raw) if raw.startswith("[") else raw.splitlines()
    except ValueError:
        return (), [f"{name} is not a JSON list of strings (ignored)"]
    patterns: list[str] = []
    problems: list[str] = []
    for n, item in enumerate(items if isinstance(items, list) else [], 1):
        if not isinstance(item, str) or not item.strip():
            continue
        try:
            re.compile(item.strip())
        except re.error as e:
            problems.append(f"{name}: pattern {n} is not a valid regex ({e.msg}); skipped")
            continue
        patterns.append(item.strip())
    return tuple(patterns), problems


def _quote(value: str) -> str:
    """The quote a matched value is written in (kept around its replacement)."""
    if value.startswith('\\"'):
        return '\\"'
    return value[:1] if value[:1] in "\"'" else ""


_secret_keys: dict[str, bool] = {}  # key -> looks secret (keys repeat: decided once)


def is_secret_key(key: str) -> bool:
    secret = _secret_keys.get(key)
    if secret is None:
        if len(_secret_keys) > 65_536:
            _secret_keys.clear()
        secret = _secret_keys[key] = bool(_SECRET_KEY.search(key))
    return secret


_secret_names: dict[str, bool] = {}  # variable name -> looks secret (names repeat: decided once)


def secret_env_values(env: Mapping[str, str]) -> dict[str, str]:
    """{value: variable name} of the environment variables whose names look secret."""
    names = _secret_names
    out: dict[str, str] = {}
    for k, v in env.items():
        secret = names.get(k)
        if secret is None:
            secret = names[k] = bool(_SECRET_ENV.search(k))
        if secret and len(v) >= _MIN_SECRET_LEN:
            out[v] = k
    return out


# {value: variable name} another process told this one: a worker's own environment lacks the
# secrets that entered the eval's after it started (worker_protocol's secrets frame; never on disk)
_told: dict[str, str] = {}


def remember(values: Mapping[str, str]) -> None:
    """Secret values told by the eval's process: every redactor of this process knows them."""
    _told.update({v: k for v, k in values.items() if isinstance(v, str) and len(v) >= _MIN_SECRET_LEN})


class Redactor:
    """Replaces secrets with ``[REDACTED:<reason>]``; a few ``str.find`` calls when there are none.

    ``env`` is called again by ``refresh`` (run, task and sample starts) when ``probe`` (the
    variable count and the known secrets' values) changed: a key exported after tracing started
    is known too, and a value once seen stays known (``extra`` values are known from the start).
    ``on_new`` hears of each value first seen by a refresh (the pipeline tells its workers).
    """

    def __init__(
        self,
        env: Mapping[str, str] | Callable[[], Mapping[str, str]],
        extra: tuple[str, ...] = (),
        patterns: Sequence[str] = (),
        probe: Callable[[Sequence[str]], tuple[object, ...]] | None = None,
    ) -> None:
        self._env = env if callable(env) else (lambda: env)
        # reading the whole environment costs µs per variable: a cheap probe says when to re-read it
        self._probe = probe
        self._names: tuple[str, ...] = ()
        self._signal: tuple[object, ...] | None = None
        self._known = {v: "value" for v in extra if len(v) >= _MIN_SECRET_LEN}
        self._user = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
        self._shapes = [(r, anchor, re.compile(rx), edge) for r, anchor, rx, edge in _SHAPES]
        self._values: list[tuple[str, str]] = []
        # what the gate looks for in a text's own case: the secret values and the token anchors
        self._needles: tuple[str, ...] = _ANCHORS
        self._alnum_needles: tuple[str, ...] = _ALNUM_ANCHORS  # those an alphanumeric text can hold
        self._fingerprint: frozenset[tuple[str, str]] | None = None
        # strings known to hold no secret (already redacted): the edge pass finds each in O(1),
        # so content redacted once where it is encoded is not searched again on every span
        self._clean: set[str] = set()
        self._clean_chars = 0
        self.on_new: Callable[[dict[str, str]], None] | None = None  # set after the first read
        self.refresh()

    def refresh(self) -> bool:
        """Re-read the secret environment values (when the probe says something changed); says
        whether they changed."""
        if self._probe is not None:
            signal = (len(_told), *self._probe(self._names))
            if signal == self._signal:
                return False
        found = {**_told, **secret_env_values(self._env())}
        if self._probe is not None:
            self._names = tuple(sorted(set(found.values())))
            self._signal = (len(_told), *self._probe(self._names))
        fingerprint = frozenset(found.items())
        if fingerprint == self._fingerprint:
            return False
        self._fingerprint = fingerprint
        self._clean.clear()
        self._clean_chars = 0
        new = {v: k for v, k in found.items() if v not in self._known}
        # a value once seen stays a secret after it leaves the environment (a rotated key)
        self._known.update({v: f"env:{k}" for v, k in found.items()})
        values = dict(self._known)
        # also the JSON-escaped form: content may be redacted after it has been serialised
        values.update({json.dumps(v, ensure_ascii=False)[1:-1]: r for v, r in values.items()})
        # longest first so a secret containing another is replaced whole
        self._values = sorted(values.items(), key=lambda item: len(item[0]), reverse=True)
        self._needles = (*values, *_ANCHORS)
        self._alnum_needles = (*(v for v in values if v.isalnum()), *_ALNUM_ANCHORS)
        if new and self.on_new is not None:
            self.on_new(new)
        return True

    def _cuts(self, value: str) -> list[tuple[int, int, str]]:
        """(start, end, replacement) of every secret found in ``value``."""
        cuts: list[tuple[int, int, str]] = []
        if len(value) < 6:  # shorter than any secret the rules below can find
            return cuts
        # the gate: one C-level pass per needle (str containment, ~1 ns a byte; Python's regex
        # alternation costs 35-100 ns a byte) says which of the searches below can find anything;
        # most texts (ids, names, messages) hold no needle and no secret word, and stop here
        needles = any(map(value.__contains__, self._needles))
        keyed = (":" in value or "=" in value) and any(map(value.lower().__contains__, _STEMS))
        if needles:
            self._needle_cuts(value, cuts)
        if keyed:
            self._key_cuts(value, cuts)
        return cuts

    def _needle_cuts(self, value: str, cuts: list[tuple[int, int, str]]) -> None:
        """Known secret values and token shapes."""
        find = value.find
        # `x in value` (an operator) first: most strings hold no anchor, and a method call costs
        # twice as much
        for secret, reason in self._values:
            if secret in value:
                i = find(secret)
                while i != -1:
                    cuts.append((i, i + len(secret), f"[REDACTED:{reason}]"))
                    i = find(secret, i + len(secret))
        if len(value) >= 19:  # the shortest token shape
            for reason, anchor, regex, edge in self._shapes:
                if anchor in value:
                    self._shape_cuts(value, reason, anchor, regex, edge, cuts)

    @staticmethod
    def _key_cuts(value: str, cuts: list[tuple[int, int, str]]) -> None:
        """Values under secret-looking keys (``key: value``, ``key=value``, JSON, escaped JSON)."""
        low = value.lower()
        if len(low) != len(value):  # a character whose lower case is longer: search the slow way
            low = re.sub(r"[^\x00-\x7f]", "\x00", value).lower()
        has_key = "key" in low  # one check for the eight *key words
        for word in _SECRET_WORDS:
            if (word.endswith("key") and not has_key) or word not in low:
                continue
            i = low.find(word)
            while i != -1:
                after = i + len(word)
                if not low.startswith(_NOT_SECRET_AFTER, after) or low.startswith("oriz", after):
                    m = _KEY_VALUE.match(value, after)
                    if m is not None:
                        quote = _quote(m.group(1))
                        cuts.append((m.start(1), m.end(1), f"{quote}[REDACTED:secret_key]{quote}"))
                i = low.find(word, after)

    @staticmethod
    def _shape_cuts(
        value: str,
        reason: str,
        anchor: str,
        regex: re.Pattern[str],
        edge: bool,
        cuts: list[tuple[int, int, str]],
    ) -> None:
        """Every token of one shape in ``value``, found where its anchor occurs."""
        i = value.find(anchor)
        while i != -1:
            if reason == "bearer":  # the anchor is "earer": a word that is "bearer" itself
                bearer = i >= 1 and value[i - 1] in "bB" and (i == 1 or value[i - 2] not in _WORD)
                m = regex.match(value, i) if bearer else None
            else:
                m = None if edge and i and value[i - 1] in _WORD else regex.match(value, i)
            if m is not None:
                start, end = m.span()
                if reason == "url_credentials":  # keep the scheme and the host
                    start, end = start + 3, end - 1
                elif reason == "bearer":
                    start -= 1
                cuts.append(
                    (start, end, f"[REDACTED:{'anthropic_key' if m.groups() and m.group(1) else reason}]")
                )
            i = value.find(anchor, i + 1)

    def vouch(self, value: str) -> None:
        """Remember ``value`` as holding no secret (made only of redacted text)."""
        self._clean_chars += len(value)
        if self._clean_chars > _CLEAN_CHARS:
            self._clean.clear()
            self._clean_chars = len(value)
        self._clean.add(value)

    def text(self, value: str) -> str:
        clean = self._clean
        if not value or value in clean:
            return value
        if value.isalnum():  # an id or a word: no separator, so only an alphanumeric needle fits
            cuts: list[tuple[int, int, str]] = []
            if len(value) >= 6 and any(map(value.__contains__, self._alnum_needles)):
                self._needle_cuts(value, cuts)
        else:
            cuts = self._cuts(value)
        if cuts:
            value = _apply(value, cuts)
        if self._user is not None and self._user.search(value) is not None:
            value = self._user.sub("[REDACTED:pattern]", value)
        # vouch(value), inlined: this runs for every string not seen before (hot path)
        self._clean_chars += len(value)
        if self._clean_chars > _CLEAN_CHARS:
            clean.clear()
            self._clean_chars = len(value)
        clean.add(value)
        return value

    def structure(self, value: Any, secret: bool = False) -> Any:
        """A JSON-like structure with every string under a secret-looking key (at any depth)
        replaced, and every other string redacted; numbers and booleans stay."""
        if isinstance(value, Mapping):
            return {str(k): self.structure(v, secret or is_secret_key(str(k))) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.structure(v, secret) for v in value]
        if isinstance(value, str):
            return REDACTED if secret and value else self.text(value)
        return value


def _apply(value: str, cuts: list[tuple[int, int, str]]) -> str:
    """``value`` with every cut replaced (a cut inside one already replaced is skipped)."""
    cuts.sort(key=lambda cut: (cut[0], -cut[1]))
    out: list[str] = []
    pos = 0
    for start, end, replacement in cuts:
        if start < pos:  # inside a secret already replaced
            continue
        out.append(value[pos:start])
        out.append(replacement)
        pos = end
    out.append(value[pos:])
    return "".join(out)


def redacted_eval_log(source: str, directory: Path, redactor: Redactor) -> Path:
    """A copy of an Inspect log with every string redacted, read and written by Inspect itself.

    The copy is what leaves the machine (the W&B log artifact); the user's own log is untouched.
    """
    from inspect_ai.log import EvalLog, read_eval_log, write_eval_log

    log = read_eval_log(source)
    clean = EvalLog.model_validate(redactor.structure(log.model_dump(mode="json", exclude_none=True)))
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / Path(source).name
    write_eval_log(clean, str(target))
    return target


# ------------------------------------------------------------------ content off
# a JSON string in value position (followed by , ] or }); keys are followed by ':'
_JSON_VALUE_STRING = re.compile(r'"(?:[^"\\]|\\.)*"(\s*[,\]}])')
# the same, except Inspect's categorical score letters C / I / P / N
_JSON_TEXT_SCORE = re.compile(r'"((?:[^"\\]|\\.){2,}|[^CIPN"\\])"(\s*[,\]}])')
_JSON_SCORE_FIELDS = re.compile(r',\s*"(answer|explanation)"\s*:\s*"(?:[^"\\]|\\.)*"')
_ARG_VALUE = re.compile(r"(\S=)\S+")
_CONTENT_JSON = f'"{CONTENT_OFF}"'

# error messages (a tool's or model's often holds the tool output or the prompt): removed, like
# the content attributes; error.type stays, and an error status's description becomes it
ERROR_MESSAGES = frozenset({c.TOOL_ERROR, c.MODEL_ERROR, c.SAMPLE_ERROR, c.TASK_ERROR, c.SAMPLE_LIMIT_REASON})
_REMOVED = c.CONTENT_ATTRIBUTES | ERROR_MESSAGES  # what content off deletes


def _strings_off(text: str) -> str:
    return _JSON_VALUE_STRING.sub(_CONTENT_JSON + r"\1", text)


def _scores_off(text: str) -> str:
    text = _JSON_SCORE_FIELDS.sub("", text)
    if text.startswith('"'):  # a bare JSON string: one score's value
        return text if text in ('"C"', '"I"', '"P"', '"N"') else _CONTENT_JSON
    return _JSON_TEXT_SCORE.sub(_CONTENT_JSON + r"\2", text)


_JSON_RULES: dict[str, Callable[[str], str]] = {
    c.TASK_ARGS: _strings_off,
    c.TASK_METADATA: _strings_off,
    c.SAMPLE_SCORES: _scores_off,
    c.SCORE_VALUE: _scores_off,
    c.COMMAND_LINE: lambda text: _ARG_VALUE.sub(r"\1" + CONTENT_OFF, text),
}


class Scrubber:
    """The one pass at the edge, on every span the hook emits (``SpanFactory.emit``)."""

    def __init__(self, redactor: Redactor, capture_content: bool) -> None:
        self.redactor = redactor
        self.content = capture_content

    def refresh(self) -> None:
        """A new run, task or sample: pick up secrets that entered the environment since."""
        self.redactor.refresh()

    def attributes(self, attrs: dict[str, Any]) -> None:
        """Redact every string (and string list) in place; without content, apply the content rules."""
        redactor = self.redactor
        clean = redactor._clean  # inlined: most values (ids, names) were seen before (hot path)
        for key, value in attrs.items():
            if value.__class__ is str:
                if value not in clean:
                    attrs[key] = redactor.text(value)
            elif isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
                attrs[key] = [redactor.text(v) if isinstance(v, str) else v for v in value]
        if not self.content:
            self._content_off(attrs)

    def _content_off(self, attrs: dict[str, Any]) -> None:
        for key in _REMOVED & attrs.keys():
            del attrs[key]
        for key in _JSON_RULES.keys() & attrs.keys():
            value = attrs[key]
            if isinstance(value, str):
                attrs[key] = _JSON_RULES[key](value)

    def span(self, attrs: dict[str, Any], events: Iterable[Any], status: Status) -> Status:
        """Scrub a span's attributes and events in place; the status to end it with."""
        self.attributes(attrs)
        for event in events:
            if isinstance(event.attributes, dict):
                self.attributes(event.attributes)
        description = status.description
        if status.status_code is not StatusCode.ERROR or not description:
            return status
        if not self.content:
            return Status(StatusCode.ERROR, str(attrs.get(c.ERROR_TYPE) or CONTENT_OFF))
        redacted = self.redactor.text(description)
        return status if redacted is description else Status(StatusCode.ERROR, redacted)
