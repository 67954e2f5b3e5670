"""The one OTLP ``AnyValue`` codec: attribute values between Python, protobuf and OTLP/JSON.

Every path an attribute takes — the hook's span files (Python → JSON text), the worker and OTLP
export (JSON → Python for SDK spans), the receiver (protobuf → Python records) and the receiver's
span files (Python records → protobuf) — converts values here, so a value means the same thing
on every path. The rules: bools before ints (``bool`` is an ``int``), ints outside int64 and
unknown types become strings, bytes stay bytes for SDK spans and become hex in records (JSON-safe).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

_INT64 = 2**63
_str = json.encoder.encode_basestring  # JSON string, non-ASCII kept


def _float(value: float) -> str:
    """Quoted NaN/Infinity, as protobuf's JSON mapping writes them (bare ones are not JSON)."""
    if value != value:
        return '"NaN"'
    if value in (float("inf"), float("-inf")):
        return '"Infinity"' if value > 0 else '"-Infinity"'
    return float.__repr__(value)


# --- Python → OTLP/JSON text (the span files; built as strings, never a dict tree) ----------


def to_json(value: Any) -> str:
    if isinstance(value, str):
        return '{"stringValue":' + _str(value) + "}"
    if isinstance(value, bool):
        return '{"boolValue":true}' if value else '{"boolValue":false}'
    if isinstance(value, int):
        if -_INT64 <= value < _INT64:
            return '{"intValue":"' + str(value) + '"}'
        return '{"stringValue":"' + str(value) + '"}'
    if isinstance(value, float):
        return '{"doubleValue":' + _float(value) + "}"
    if isinstance(value, (list, tuple)):
        return '{"arrayValue":{"values":[' + ",".join([to_json(v) for v in value]) + "]}}"
    if isinstance(value, bytes):
        return '{"bytesValue":"' + base64.b64encode(value).decode() + '"}'
    if isinstance(value, dict):  # records only (kvlists; the SDK refuses dict and None values)
        return '{"kvlistValue":{"values":' + kvs_to_json(value) + "}}"
    if value is None:
        return "{}"
    return '{"stringValue":' + _str(str(value)) + "}"


def kvs_to_json(attributes: Mapping[str, Any]) -> str:
    return (
        "["
        + ",".join(['{"key":' + _str(k) + ',"value":' + to_json(v) + "}" for k, v in attributes.items()])
        + "]"
    )


# --- OTLP/JSON document → Python (SDK spans rebuilt from a span-file line) --------------------


def from_json(v: Mapping[str, Any], record: bool = False) -> Any:
    """An OTLP/JSON value as an SDK span holds it, or (``record``) as ``from_proto`` gives it.

    Records (lists, hex bytes, kvlists as dicts) must not depend on whether a span file was read
    through protobuf or straight from its JSON (ten times faster); SDK spans take tuples and bytes.
    """
    if "stringValue" in v:
        return str(v["stringValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "arrayValue" in v:
        items = [from_json(x, record) for x in v["arrayValue"].get("values", [])]
        return items if record else tuple(items)
    if "kvlistValue" in v and record:
        return kvs_from_json(v["kvlistValue"].get("values"), record)
    if "bytesValue" in v:
        raw = base64.b64decode(v["bytesValue"])
        return raw.hex() if record else raw
    return None


def kvs_from_json(kvs: Iterable[Mapping[str, Any]] | None, record: bool = False) -> dict[str, Any]:
    return {str(kv["key"]): from_json(kv.get("value") or {}, record) for kv in kvs or []}


# --- protobuf ↔ Python (the receiver's records and its span files) ------------------------------


def from_proto(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [from_proto(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: from_proto(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, which)


def kvs_from_proto(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: from_proto(kv.value) for kv in kvs}


def to_proto(value: Any) -> AnyValue:
    v = AnyValue()
    if value is None:
        return v
    if isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, int) and -_INT64 <= value < _INT64:
        v.int_value = value
    elif isinstance(value, float):
        v.double_value = value
    elif isinstance(value, str):
        v.string_value = value
    elif isinstance(value, bytes):
        v.bytes_value = value
    elif isinstance(value, list | tuple):
        v.array_value.values.extend(to_proto(x) for x in value)
    elif isinstance(value, dict):
        v.kvlist_value.values.extend(kvs_to_proto(value))
    else:
        v.string_value = str(value)
    return v


def kvs_to_proto(attrs: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=str(k), value=to_proto(v)) for k, v in attrs.items()]
