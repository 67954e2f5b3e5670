"""The on/off switch, kept apart from config so the disabled path imports almost nothing."""

ENABLED_VAR = "INSPECT_OTEL_ENABLED"
TRUE_VALUES = frozenset({"1", "true", "yes", "on"})
FALSE_VALUES = frozenset({"0", "false", "no", "off", ""})
