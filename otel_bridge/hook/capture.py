"""Content attributes: one bounded, redacted JSON encoding per value, reused where it repeats.

Prompts, outputs, tool arguments and results, a sample's input and target: every model call
of an agent loop carries the whole conversation so far, so each message is encoded once per
sample (a ``MessageCache``, kept by the sample's trace) and the tools offered once per recorder,
and a loop costs O(turns), not O(turns²). All of it runs on the eval's event loop.
"""

from __future__ import annotations

from typing import Any

from inspect_ai.model import ChatMessage
from inspect_ai.tool import ToolInfo

from otel_bridge import conventions as c
from otel_bridge.config import Settings
from otel_bridge.hook.attributes import Attrs
from otel_bridge.hook.content import bounded_json, bounded_json_text, dumps, to_jsonable
from otel_bridge.hook.messages import fingerprint, message_json, system_parts, tool_definitions
from otel_bridge.redact import Redactor

# id(message) -> (fingerprint, its redacted JSON, bytes): each message encoded once per sample
MessageCache = dict[int, tuple[tuple[Any, ...], str, int]]


class ContentCapture:
    """Sets content attributes as the settings ask (or not at all, without content capture)."""

    def __init__(self, settings: Settings, redactor: Redactor) -> None:
        self.settings = settings
        self.redactor = redactor
        self._tools_json: dict[tuple[tuple[str, str], ...], tuple[str, bool]] = {}

    def content(self, attrs: Attrs, keys: str | tuple[str, ...], value: Any, truncated: list[str]) -> None:
        """Set content attribute(s) to one bounded, redacted JSON encoding of ``value``.

        Encoded once even when mirrored under several keys (gen_ai.* and input/output.value):
        this runs for every model call, on the eval's event loop.
        """
        if not self.settings.content.capture or value is None:
            return
        # redacted before it is cut: a cut cannot leave half a secret, nor redaction overshoot the
        # cap. A mapping (metadata, tool arguments) is redacted as a structure (a secret-named
        # key hides everything under it); anything else as its JSON text (one search, hot path)
        jsonable = to_jsonable(value)
        if isinstance(jsonable, dict):
            text, cut = bounded_json(self.redactor.structure(jsonable), self.settings.content.max_bytes)
        elif isinstance(jsonable, str):
            text, cut = bounded_json(self.redactor.text(jsonable), self.settings.content.max_bytes)
        else:
            text, cut = bounded_json_text(
                self.redactor.text(dumps(jsonable)), self.settings.content.max_bytes
            )
        text = self.redactor.vouch(text)  # made of redacted text: the edge pass need not search it again
        for key in (keys,) if isinstance(keys, str) else keys:
            attrs[key] = text
            if cut:
                truncated.append(key)

    def input_messages(
        self, cache: MessageCache, messages: list[ChatMessage], attrs: Attrs, truncated: list[str]
    ) -> None:
        """gen_ai.input.messages (mirrored in input.value) and gen_ai.system_instructions.

        Each model call carries the whole conversation so far. Every message is encoded once
        per sample and reused by later calls while it is unchanged, so an agent loop costs
        O(turns), not O(turns²); over the byte budget the whole list is truncated as one value.
        """
        budget = self.settings.content.max_bytes
        system: list[str] = []
        fragments: list[str] = []
        size = 1
        for message in messages:
            refs = fingerprint(message)
            cached = cache.get(id(message))
            if cached is not None and _same(cached[0], refs):
                text, nbytes = cached[1], cached[2]
            else:
                # a system message is kept as its parts (gen_ai.system_instructions), inner JSON only
                value = system_parts(message) if message.role == "system" else message_json(message)
                text = self.redactor.text(dumps(value))
                if message.role == "system":
                    text = text[1:-1]
                nbytes = len(text.encode("utf-8"))
                if nbytes <= budget:
                    cache[id(message)] = (refs, text, nbytes)
            if message.role == "system":
                if text:
                    system.append(text)
                continue
            fragments.append(text)
            size += nbytes + 1
        if system:
            joined_system = "[" + ",".join(system) + "]"
            if len(joined_system) * 4 <= budget or len(joined_system.encode("utf-8")) <= budget:
                joined_system = self.redactor.vouch(joined_system)
                attrs[c.GEN_AI_SYSTEM_INSTRUCTIONS] = joined_system
            else:
                parts = [p for m in messages if m.role == "system" for p in system_parts(m)]
                self.content(attrs, c.GEN_AI_SYSTEM_INSTRUCTIONS, parts, truncated)
        if size <= budget:
            joined = "[" + ",".join(fragments) + "]"
            joined = self.redactor.vouch(joined)
            attrs[c.GEN_AI_INPUT_MESSAGES] = attrs[c.INPUT_VALUE] = joined
        else:
            rest = [message_json(m) for m in messages if m.role != "system"]
            self.content(attrs, (c.GEN_AI_INPUT_MESSAGES, c.INPUT_VALUE), rest, truncated)

    def tool_definitions(self, attrs: Attrs, tools: list[ToolInfo], truncated: list[str]) -> None:
        """The same tools are offered on every turn of an agent loop: encode them once."""
        key = tuple((t.name, t.description) for t in tools)
        cached = self._tools_json.get(key)
        if cached is None:
            encoded: Attrs = {}
            cut: list[str] = []
            self.content(encoded, c.GEN_AI_TOOL_DEFINITIONS, tool_definitions(tools), cut)
            if len(self._tools_json) > 256:
                self._tools_json.clear()
            if c.GEN_AI_TOOL_DEFINITIONS not in encoded:
                return
            cached = self._tools_json[key] = (str(encoded[c.GEN_AI_TOOL_DEFINITIONS]), bool(cut))
        attrs[c.GEN_AI_TOOL_DEFINITIONS] = cached[0]
        if cached[1]:
            truncated.append(c.GEN_AI_TOOL_DEFINITIONS)


def mark_truncated(attrs: Attrs, truncated: list[str]) -> None:
    """Name the content attributes that were cut to the byte budget (inspect.truncated)."""
    if truncated:
        attrs[c.TRUNCATED] = sorted(set(truncated))


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))
