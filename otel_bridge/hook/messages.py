"""Inspect chat messages → GenAI semantic-convention message JSON."""

from __future__ import annotations

from typing import Any

from inspect_ai.model import ChatMessage, ChatMessageAssistant, ChatMessageTool, ModelOutput
from inspect_ai.tool import ToolInfo

from otel_bridge.hook.content import to_jsonable

# Inspect StopReason → GenAI finish_reason
FINISH_REASONS = {
    "stop": "stop",
    "max_tokens": "length",
    "model_length": "length",
    "tool_calls": "tool_call",
    "content_filter": "content_filter",
    "unknown": "stop",
}


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    parts: list[dict[str, Any]] = []
    for item in content or []:
        kind = getattr(item, "type", None)
        if kind == "text":
            parts.append({"type": "text", "content": item.text})
        elif kind == "reasoning":
            text = getattr(item, "reasoning", "") if not getattr(item, "redacted", False) else "[redacted]"
            parts.append({"type": "reasoning", "content": text})
        elif kind in {"image", "audio", "video"}:
            ref = getattr(item, kind, "")
            if isinstance(ref, str) and ref.startswith("data:"):
                parts.append({"type": "blob", "modality": kind, "content": f"<{len(ref)} bytes inline>"})
            else:
                parts.append({"type": "uri", "modality": kind, "uri": str(ref)})
        else:
            parts.append({"type": str(kind or "data"), "content": to_jsonable(item)})
    return parts


def message_json(message: ChatMessage) -> dict[str, Any]:
    role = message.role
    if isinstance(message, ChatMessageTool):
        response: Any = message.text
        error = getattr(message, "error", None)
        if error is not None:
            response = {"error": getattr(error, "message", str(error)), "output": message.text}
        return {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": message.tool_call_id, "response": response}],
        }
    parts = _parts(message.content)
    for call in getattr(message, "tool_calls", None) or []:
        parts.append({"type": "tool_call", "id": call.id, "name": call.function, "arguments": call.arguments})
    out: dict[str, Any] = {"role": role, "parts": parts}
    return out


def system_parts(message: ChatMessage) -> list[dict[str, Any]]:
    """A system message's parts, for gen_ai.system_instructions."""
    return _parts(message.content)


def fingerprint(message: ChatMessage) -> tuple[Any, ...]:
    """The objects a message's JSON is made of, compared by identity to reuse its encoding.

    Inspect passes the same message objects to every later model call of a sample; a solver
    that edits a message replaces one of these objects (content, a part's text, the tool
    calls), which changes the fingerprint. Holding the objects keeps their ids from being reused.
    """
    content = message.content
    refs: list[Any] = [message, content]
    if not isinstance(content, str):
        for item in content:  # a part edited in place changes one of its field objects
            refs.append(item)
            refs.extend(vars(item).values())
    if isinstance(message, ChatMessageAssistant) and message.tool_calls:
        calls = message.tool_calls
        refs.append(calls)
        refs.extend(calls)
        refs.extend(call.arguments for call in calls)
    elif isinstance(message, ChatMessageTool):
        refs.append(message.error)
    return tuple(refs)


def output_messages(output: ModelOutput) -> list[dict[str, Any]]:
    result = []
    for choice in output.choices:
        item = message_json(choice.message)
        item["finish_reason"] = FINISH_REASONS.get(str(choice.stop_reason), str(choice.stop_reason))
        result.append(item)
    return result


def finish_reasons(output: ModelOutput) -> list[str]:
    return [FINISH_REASONS.get(str(c.stop_reason), str(c.stop_reason)) for c in output.choices]


def tool_definitions(tools: list[ToolInfo]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "name": t.name,
            "description": t.description,
            "parameters": to_jsonable(t.parameters),
        }
        for t in tools
    ]
