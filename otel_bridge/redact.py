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
from otel_bridge.secret_text import (
    ALNUM_ANCHOR_GROUPS,
    ANCHOR_GROUPS,
    SECRET_WORDS,
    SHAPE_MIN_LEN,
    SHAPES,
    STEM_GROUPS,
    Cut,
    Groups,
    apply_cuts,
    holds_any,
    key_cuts,
    shape_cuts,
)

REDACTED = "[REDACTED:secret_key]"  # the value of a secret-looking key, anywhere
CONTENT_OFF = "[REDACTED:content]"
_SECRET_KEY = re.compile(
    "|".join([*(w for w in SECRET_WORDS if w not in {"token", "auth"}), "headers?", "cookie"])
    + r"|token(?!s|izer|_?count|_?limit)|auth(?!or(?!iz))",
    re.IGNORECASE,
)
_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION)", re.IGNORECASE)
_MIN_SECRET_LEN = 8
_CLEAN_CHARS = 8_000_000  # what the known-clean strings may hold before they are forgotten


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


class Redacted(str):
    """A text made only of redacted parts (the content encoder's output, ``Redactor.vouch``).

    The edge pass passes it by its exact type: no hash, no set entry, no search. Content is most
    of a span's bytes and is encoded anew for each span (a conversation joined for every model
    call), so remembering it by value would hash it whole for a lookup that happens once.
    """

    __slots__ = ()


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
        self._shapes = [(r, anchor, re.compile(rx), edge) for r, anchor, rx, edge in SHAPES]
        self._values: list[tuple[str, str]] = []
        # what the gate looks for in a text's own case, as ``secret_text.holds_any`` groups:
        # [alphanumeric text][long enough for a token shape] -> the secret values it can hold,
        # then the token anchors
        self._needles: tuple[tuple[Groups, Groups], tuple[Groups, Groups]] = (
            ((), ANCHOR_GROUPS),
            ((), ALNUM_ANCHOR_GROUPS),
        )
        self._fingerprint: frozenset[tuple[str, str]] | None = None
        # strings known to hold no secret (what ``text`` returned): the edge pass finds a
        # repeated id or name in O(1) instead of searching it again on every span
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
        plain: Groups = tuple((v, ()) for v in values)
        alnum: Groups = tuple((v, ()) for v in values if v.isalnum())
        self._needles = ((plain, plain + ANCHOR_GROUPS), (alnum, alnum + ALNUM_ANCHOR_GROUPS))
        if new and self.on_new is not None:
            self.on_new(new)
        return True

    def _needle_cuts(self, value: str, cuts: list[Cut]) -> None:
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
        if len(value) >= SHAPE_MIN_LEN:
            for reason, anchor, regex, edge in self._shapes:
                if anchor in value:
                    shape_cuts(value, reason, anchor, regex, edge, cuts)

    def vouch(self, value: str) -> Redacted:
        """``value`` (made only of redacted text) marked so: the edge pass passes it by its type."""
        return Redacted(value)

    def text(self, value: str) -> str:
        """``value`` with every secret replaced: the same object when it holds none.

        A gate first: containment only, one C-level pass per needle (~1 ns a byte; Python's regex
        alternation costs 35-100), the token anchors and key stems in guarded groups
        (``secret_text.holds_any``). Most texts (ids, names, messages) hold nothing and stop there.
        """
        clean = self._clean
        if not value or value in clean:
            return value
        size = len(value)
        if size >= 6:  # shorter than any secret the rules below can find
            alnum = value.isalnum()  # an id or a word: only an alphanumeric needle, no key rule
            needles = holds_any(value, self._needles[alnum][size >= SHAPE_MIN_LEN])
            keyed = not alnum and (":" in value or "=" in value) and holds_any(value.lower(), STEM_GROUPS)
            if needles or keyed:
                cuts: list[Cut] = []
                if needles:
                    self._needle_cuts(value, cuts)
                if keyed:
                    key_cuts(value, cuts)
                if cuts:
                    value = apply_cuts(value, cuts)
        if self._user is not None and self._user.search(value) is not None:
            value = self._user.sub("[REDACTED:pattern]", value)
        # remembered: the same text found again is returned at once
        self._clean_chars += len(value)
        if self._clean_chars > _CLEAN_CHARS:
            clean.clear()
            self._clean_chars = len(value)
        clean.add(value)
        return value

    def structure(self, value: Any, secret: bool = False) -> Any:
        """A JSON-like structure with every string under a secret-looking key (at any depth)
        replaced, and every other string (keys too: a dict may be keyed by a token) redacted;
        numbers and booleans stay."""
        cls = value.__class__  # the exact JSON types first: an isinstance on an ABC costs ~0.1 µs
        if cls is str:
            return REDACTED if secret and value else self.text(value)
        if cls is int or cls is float or cls is bool or value is None:
            return value
        if cls is dict or isinstance(value, Mapping):
            out = {}
            for k, v in value.items():
                key = k if k.__class__ is str else str(k)
                out[self.text(key)] = self.structure(v, secret or is_secret_key(key))
            return out
        if cls is list or isinstance(value, (list, tuple)):
            return [self.structure(v, secret) for v in value]
        if isinstance(value, str):
            return REDACTED if secret and value else self.text(value)
        return value


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
        # the last status found to need nothing (every span ends with the same unset Status, and a
        # Status cannot change): the next span ending with it skips its two property reads
        self._plain: Status | None = None

    def refresh(self) -> None:
        """A new run, task or sample: pick up secrets that entered the environment since."""
        self.redactor.refresh()

    def attributes(self, attrs: dict[str, Any]) -> None:
        """Redact every string (and string list) in place; without content, apply the content rules.

        Most values are ids and names seen before (the redactor's clean set, looked up here: a
        call costs more than the lookup), numbers, or content the encoder redacted (``Redacted``:
        passed by its type).
        """
        redactor = self.redactor
        clean = redactor._clean
        text = redactor.text
        for key, value in attrs.items():
            cls = value.__class__
            if cls is str:
                if value not in clean:
                    attrs[key] = text(value)
            elif cls is Redacted or cls is int or cls is float or cls is bool:
                continue
            elif cls is list or cls is tuple:
                if value and isinstance(value[0], str):
                    attrs[key] = self._sequence(value)
            elif isinstance(value, str):  # another str subclass
                attrs[key] = text(value)
        if not self.content:
            self._content_off(attrs)

    def _sequence(self, value: Any) -> Any:
        """A string list redacted: itself when every item is known clean (finish reasons)."""
        if all(v.__class__ is str for v in value) and self.redactor._clean.issuperset(value):
            return value
        return [self.redactor.text(v) if isinstance(v, str) else v for v in value]

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
        if status is self._plain:
            return status
        description = status.description
        if status.status_code is not StatusCode.ERROR or not description:
            self._plain = status
            return status
        if not self.content:
            return Status(StatusCode.ERROR, str(attrs.get(c.ERROR_TYPE) or CONTENT_OFF))
        redacted = self.redactor.text(description)
        return status if redacted is description else Status(StatusCode.ERROR, redacted)
