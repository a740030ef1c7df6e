"""The tool version recorded in every report and in sweep result keys."""

TOOL_VERSION = "0.1.0"
