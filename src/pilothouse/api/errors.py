"""Validation errors that name the field: the user must learn *where* a manifest is wrong.

pydantic reports locations as tuples; users think in dotted paths (``spec.autoscaling.minReplicas``),
the way ``kubectl`` reports them. Every layer that rejects input raises ``ManifestError`` so the server
can answer 422 and the CLI can print one line per problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with one field of a manifest."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ManifestError(ValueError):
    """A manifest failed validation; ``problems`` name each bad field."""

    def __init__(self, problems: Sequence[FieldProblem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(prefix + "; ".join(str(p) for p in self.problems))


def format_loc(loc: Iterable[int | str]) -> str:
    """Render a pydantic location as a dotted path with list indexes: ``spec.model.command[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "union[")) or part in {"str", "dict[str,int]", "int"}:
            continue  # pydantic's internal validator names say nothing to a user
        else:
            out += f".{part}" if out else part
    return out


_FRIENDLY = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
}


def problems_from_validation_error(exc: ValidationError, prefix: str = "") -> list[FieldProblem]:
    """Translate pydantic's errors into field problems, one per bad field."""
    problems: list[FieldProblem] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        path = format_loc(err["loc"])
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        message = _FRIENDLY.get(err["type"], err["msg"])
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        key = (path, message)
        if key not in seen:
            seen.add(key)
            problems.append(FieldProblem(path, message))
    return problems
