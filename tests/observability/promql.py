"""Helpers for the observability tests: metric names in PromQL, and what a scrape exports."""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGES = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?:\s*\()?")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}
_DURATION = re.compile(r"^\d")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords and label names left out)."""
    expr = _STRINGS.sub('""', expr)
    expr = _MATCHERS.sub(" ", expr)
    expr = _GROUPING.sub(" ", expr)
    expr = _RANGES.sub(" ", expr)
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)  # Grafana variables ($__rate_interval, $namespace)
    names = set()
    for token in _IDENT.findall(expr):
        if token.rstrip().endswith("("):
            continue  # a function or aggregation
        if token.lower() in _KEYWORDS or _DURATION.match(token):
            continue
        names.add(token)
    return names


def sample_names(exposition: str) -> set[str]:
    """Every series name a scrape can be queried by (``_total``, ``_bucket``, ... included)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        if family.type == "counter":
            names |= {family.name + "_total", family.name + "_created"}
        elif family.type in ("histogram", "summary"):
            names |= {family.name + s for s in ("_bucket", "_sum", "_count", "_created")}
        elif family.type == "info":
            names.add(family.name + "_info")
        names |= {s.name for s in family.samples}
    return names


def exported(expositions: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for text in expositions:
        out |= sample_names(text)
    return out
