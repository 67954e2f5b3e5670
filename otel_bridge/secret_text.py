"""What a secret looks like inside a text, and the cuts that replace it.

Token shapes found where their literal anchor occurs, values under secret-looking keys (JSON,
escaped JSON, ``key=value``, ``key: value``), and how cuts are applied. ``redact.Redactor`` runs
these only where its gate says they can find something (docs/conventions.md, "Redaction").
"""

from __future__ import annotations

import re

Cut = tuple[int, int, str]  # (start, end, replacement)
# (guard, words): a text holds a word only if it holds the guard; no words: the guard is the word
Groups = tuple[tuple[str, tuple[str, ...]], ...]

SECRET_WORDS = (
    "api_key", "api-key", "apikey", "token", "secret", "password", "passwd", "credential", "auth",
    "private_key", "private-key", "access_key", "access-key", "session_key", "cookie",
)  # fmt: skip
# tokens, tokenizer, token_count, author (but authorization is a secret's key)
NOT_SECRET_AFTER = ("s", "izer", "_count", "count", "_limit", "or")
WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")

# Well-known token shapes: (reason, anchor, regex matched where the anchor is, starts at a word
# edge). Python's regex alternation costs ~50-100 ns a byte; str.find on the anchors costs ~1, so
# a regex only runs where its anchor occurs.
SHAPES: tuple[tuple[str, str, str, bool], ...] = (
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
STEMS = ("key", "token", "secret", "passw", "credential", "auth", "cookie")
assert all(any(stem in word for stem in STEMS) for word in SECRET_WORDS)
# every anchor of a token shape: a text holding none of them holds no token
ANCHORS = tuple(dict.fromkeys(anchor for _, anchor, _, _ in SHAPES))


def _guarded(words: tuple[str, ...], guards: tuple[str, ...]) -> Groups:
    """``words`` grouped under the first of ``guards`` each holds (a word holding none is its own
    guard, searched once). A text holds a word only if it holds the word's guard, so one search
    rules out a whole group (``redact.Redactor.text``); a guard is rare in prose and in the
    bridge's own JSON (whose keys hold ``_``)."""
    groups: dict[str, list[str]] = {}
    for word in words:
        guard = next((g for g in guards if g in word), word)
        groups.setdefault(guard, []).append(word)
    return tuple((guard, tuple(group) if group != [guard] else ()) for guard, group in groups.items())


# the GitHub token prefixes share "gh"; the others are searched as themselves
ANCHOR_GROUPS = _guarded(ANCHORS, ("gh",))
# an alphanumeric text (an id, a word) can hold only these (the others need a '-', '_', ':' ...)
ALNUM_ANCHOR_GROUPS = _guarded(tuple(a for a in ANCHORS if a.isalnum()), ("A",))
# the stems, searched in lower case: key / token / cookie share a "k", secret / credential "cre"
STEM_GROUPS = _guarded(STEMS, ("k", "cre"))


def holds_any(value: str, groups: Groups) -> bool:
    """Whether ``value`` holds a word of ``groups`` (``_guarded``: a guard with no words is the
    word itself)."""
    for guard, words in groups:
        if guard in value:
            if not words:
                return True
            for word in words:
                if word in value:
                    return True
    return False


SHAPE_MIN_LEN = 19  # the shortest text a token shape is looked for in (sk- and 16 characters)
# after a secret word: the rest of the key, its separator, and the value it holds (JSON, escaped
# JSON, Python repr, key=value); a JSON number (a token count) is no secret
KEY_VALUE = re.compile(
    r"[A-Za-z0-9_.-]*(?:\\?[\"'])?(?:\s*[:=]\s*(?=[\"'\\])|=)"
    r"(\"(?:[^\"\\]|\\.)*\"|\\\"(?:[^\"\\]|\\[^\"])*\\\"|'[^']*'|[^\s,;&\"'}\])]+)"
)


def quote_of(value: str) -> str:
    """The quote a matched value is written in (kept around its replacement)."""
    if value.startswith('\\"'):
        return '\\"'
    return value[:1] if value[:1] in "\"'" else ""


def key_cuts(value: str, cuts: list[Cut]) -> None:
    """Values under secret-looking keys (``key: value``, ``key=value``, JSON, escaped JSON)."""
    low = value.lower()
    if len(low) != len(value):  # a character whose lower case is longer: search the slow way
        low = re.sub(r"[^\x00-\x7f]", "\x00", value).lower()
    has_key = "key" in low  # one check for the eight *key words
    for word in SECRET_WORDS:
        if (word.endswith("key") and not has_key) or word not in low:
            continue
        i = low.find(word)
        while i != -1:
            after = i + len(word)
            if not low.startswith(NOT_SECRET_AFTER, after) or low.startswith("oriz", after):
                m = KEY_VALUE.match(value, after)
                if m is not None:
                    quote = quote_of(m.group(1))
                    cuts.append((m.start(1), m.end(1), f"{quote}[REDACTED:secret_key]{quote}"))
            i = low.find(word, after)


HEX = frozenset("0123456789abcdefABCDEF")


def starts_word(value: str, i: int) -> bool:
    """Whether a word starts at ``i``: the text's start, after a non-word character, or after a
    JSON escape (content is redacted as its JSON text, where a newline before a token is ``\\n``)."""
    if i == 0 or value[i - 1] not in WORD:
        return True
    if i >= 2 and value[i - 2] == "\\" and value[i - 1] in "nrtbf":
        return True
    return i >= 6 and value[i - 6] == "\\" and value[i - 5] == "u" and all(c in HEX for c in value[i - 4 : i])


def shape_cuts(
    value: str,
    reason: str,
    anchor: str,
    regex: re.Pattern[str],
    edge: bool,
    cuts: list[Cut],
) -> None:
    """Every token of one shape in ``value``, found where its anchor occurs."""
    i = value.find(anchor)
    while i != -1:
        if reason == "bearer":  # the anchor is "earer": a word that is "bearer" itself
            bearer = i >= 1 and value[i - 1] in "bB" and starts_word(value, i - 1)
            m = regex.match(value, i) if bearer else None
        else:
            m = None if edge and not starts_word(value, i) else regex.match(value, i)
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


def apply_cuts(value: str, cuts: list[Cut]) -> str:
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
