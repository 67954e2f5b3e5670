"""One sample's span tree → the tree of calls under its prediction (chats, tools, solvers).

Separate from ``mapping`` because it is the bulk of the work: GenAI semantic-convention spans
become calls with OpenAI-style chat inputs and outputs, which Weave's chat view renders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from otel_bridge import conventions as c
from otel_bridge.records import SpanRecord
from otel_bridge.translate.common import decode_json, drop_none, present_attrs
from otel_bridge.translate.weave.ops import CallSpec


def read_attr(span: SpanRecord, key: str, content: bool, default: Any = None) -> Any:
    """An attribute, decoded; content attributes read as absent when capture is off."""
    if not content and key in c.CONTENT_ATTRIBUTES:
        return default
    value = span.attributes.get(key)
    return default if value is None else decode_json(value)


def _messages(value: Any) -> list[dict[str, Any]]:
    """GenAI semconv messages (parts) → OpenAI-style chat messages Weave's chat view reads."""
    out: list[dict[str, Any]] = []
    if not isinstance(value, list):
        return out
    for m in value:
        if not isinstance(m, Mapping):
            continue
        texts: list[str] = []
        tool_calls: list[dict[str, Any]] = []
        for part in m.get("parts") or ():
            if not isinstance(part, Mapping):
                continue
            kind = part.get("type")
            if kind == "text" or kind == "reasoning":
                texts.append(str(part.get("content", "")))
            elif kind == "tool_call":
                tool_calls.append(
                    {
                        "id": part.get("id"),
                        "type": "function",
                        "function": {
                            "name": part.get("name"),
                            "arguments": json.dumps(part.get("arguments")),
                        },
                    }
                )
            elif kind == "tool_call_response":
                texts.append(str(part.get("response", part.get("result", ""))))
            else:
                texts.append(json.dumps(part))
        msg: dict[str, Any] = {"role": m.get("role", "user"), "content": "\n".join(texts)}
        if tool_calls:
            msg["tool_calls"] = tool_calls
        if m.get("finish_reason"):
            msg["finish_reason"] = m.get("finish_reason")
        out.append(msg)
    return out


_USAGE_KEYS = (
    ("input_tokens", c.GEN_AI_USAGE_INPUT_TOKENS),
    ("output_tokens", c.GEN_AI_USAGE_OUTPUT_TOKENS),
    ("cache_read_input_tokens", c.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
    ("cache_write_input_tokens", c.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS),
    ("reasoning_tokens", c.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
)

_REQUEST_KEYS = (
    ("temperature", c.GEN_AI_REQUEST_TEMPERATURE),
    ("max_tokens", c.GEN_AI_REQUEST_MAX_TOKENS),
    ("top_p", c.GEN_AI_REQUEST_TOP_P),
    ("top_k", c.GEN_AI_REQUEST_TOP_K),
    ("stop", c.GEN_AI_REQUEST_STOP_SEQUENCES),
    ("frequency_penalty", c.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", c.GEN_AI_REQUEST_PRESENCE_PENALTY),
    ("seed", c.GEN_AI_REQUEST_SEED),
    ("reasoning_effort", c.GEN_AI_REQUEST_REASONING_LEVEL),
)


def chat_model(span: SpanRecord) -> str:
    """The model the provider answered with: the key weave's usage rollup and cost table use."""
    a = span.attributes
    return str(a.get(c.GEN_AI_RESPONSE_MODEL) or a.get(c.GEN_AI_REQUEST_MODEL) or "unknown")


def chat_usage(span: SpanRecord) -> dict[str, int]:
    """A chat span's token counts, named as weave's usage rollup names them."""
    a = span.attributes
    usage = {name: int(a[key]) for name, key in _USAGE_KEYS if isinstance(a.get(key), (int, float))}
    if "input_tokens" in usage or "output_tokens" in usage:
        usage["total_tokens"] = usage.get("input_tokens", 0) + usage.get("output_tokens", 0)
    return usage


def _chat_io(span: SpanRecord, content: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    a = span.attributes
    inputs: dict[str, Any] = {"model": a.get(c.GEN_AI_REQUEST_MODEL)}
    inputs.update(present_attrs(span, _REQUEST_KEYS))
    if content:
        system = read_attr(span, c.GEN_AI_SYSTEM_INSTRUCTIONS, True)
        messages = _messages(read_attr(span, c.GEN_AI_INPUT_MESSAGES, True))
        if isinstance(system, list):
            text = "\n".join(str(p.get("content", "")) for p in system if isinstance(p, Mapping))
            messages.insert(0, {"role": "system", "content": text})
        inputs["messages"] = messages
        tools = read_attr(span, c.GEN_AI_TOOL_DEFINITIONS, True)
        if tools is not None:
            inputs["tools"] = tools
    usage = chat_usage(span)
    reasons = a.get(c.GEN_AI_RESPONSE_FINISH_REASONS) or []
    choices: list[dict[str, Any]] = []
    if content:
        for i, msg in enumerate(_messages(read_attr(span, c.GEN_AI_OUTPUT_MESSAGES, True))):
            reason = msg.pop("finish_reason", reasons[i] if i < len(reasons) else None)
            choices.append({"index": i, "message": msg, "finish_reason": reason})
    output: dict[str, Any] = {
        "id": a.get(c.GEN_AI_RESPONSE_ID),
        "model": chat_model(span),
        "choices": choices,
        "finish_reasons": list(reasons),
        "usage": usage,
    }
    return drop_none(inputs), drop_none(output)


def _op_name(span: SpanRecord) -> str:
    """Stable op names (variety goes to display names): ``chat``, ``execute_tool``, ``inspect.solver``."""
    return span.name.split(" ", 1)[0] or "span"


def call_spec(span: SpanRecord, children: tuple[CallSpec, ...], content: bool) -> CallSpec:
    """One span of a sample trace → one call, with Inspect's times and readable inputs/outputs."""
    a = span.attributes
    op = _op_name(span)
    inputs: dict[str, Any]
    output: Any
    if op == c.OP_CHAT:
        inputs, output = _chat_io(span, content)
    elif op == c.OP_EXECUTE_TOOL:
        inputs = {"name": a.get(c.GEN_AI_TOOL_NAME), "call_id": a.get(c.GEN_AI_TOOL_CALL_ID)}
        args = read_attr(span, c.GEN_AI_TOOL_CALL_ARGUMENTS, content)
        if args is not None:
            inputs["arguments"] = args
        output = read_attr(span, c.GEN_AI_TOOL_CALL_RESULT, content)
        if a.get(c.TOOL_ERROR) is not None:
            output = {"result": output, "error": a.get(c.TOOL_ERROR)}
    elif span.name == c.SPAN_SANDBOX:
        inputs = {"action": a.get(c.SANDBOX_ACTION), "file": a.get(c.SANDBOX_FILE)}
        cmd = read_attr(span, c.SANDBOX_CMD, content)
        if cmd is not None:
            inputs["cmd"] = cmd
        output = a.get(c.SANDBOX_RESULT)
    else:
        inputs = {"name": a.get(c.SPAN_NAME), "type": a.get(c.SPAN_TYPE)}
        value = read_attr(span, c.INPUT_VALUE, content)
        if value is not None:
            inputs["input"] = value
        output = read_attr(span, c.OUTPUT_VALUE, content)
    attributes = {
        "inspect": drop_none(
            {
                "span_id": span.span_id,
                "trace_id": span.trace_id,
                "span_name": span.name,
                "span_type": a.get(c.SPAN_TYPE),
                "model_role": a.get(c.MODEL_ROLE),
                "working_time": a.get(c.MODEL_WORKING_TIME),
                "retries": a.get(c.MODEL_RETRIES),
                "cache": a.get(c.MODEL_CACHE),
            }
        )
    }
    if a.get(c.GEN_AI_PROVIDER_NAME):
        attributes["gen_ai"] = {
            "provider": a.get(c.GEN_AI_PROVIDER_NAME),
            "operation": a.get(c.GEN_AI_OPERATION_NAME),
        }
    error = None
    if span.status == "ERROR":
        error = span.status_message or str(a.get(c.MODEL_ERROR) or a.get(c.TOOL_ERROR) or "error")
    return CallSpec(
        key=span.span_id,
        op=op,
        display_name=str(a.get(c.WANDB_DISPLAY_NAME) or span.name),
        inputs=drop_none(inputs),
        output=output,
        attributes=attributes,
        start_ns=span.start_ns,
        end_ns=span.end_ns or span.start_ns,
        error=error,
        children=children,
    )


def span_tree(root: SpanRecord, spans: Sequence[SpanRecord]) -> dict[str, list[SpanRecord]]:
    """Children by parent span id, in start order (orphans hang under the root)."""
    by_parent: dict[str, list[SpanRecord]] = {}
    for s in spans:
        if s.span_id != root.span_id:
            by_parent.setdefault(s.parent_id or root.span_id, []).append(s)
    for kids in by_parent.values():
        kids.sort(key=lambda s: (s.start_ns, s.span_id))
    return by_parent


def build_call(span: SpanRecord, by_parent: Mapping[str, list[SpanRecord]], content: bool) -> CallSpec:
    """``span`` and everything below it, as calls."""
    kids = tuple(build_call(k, by_parent, content) for k in by_parent.get(span.span_id, ()))
    return call_spec(span, kids, content)
