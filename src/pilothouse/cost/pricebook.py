"""The price book: what one hour of a CPU core, a GiB of memory and each accelerator costs, per node pool.

Platform teams configure it once (YAML in the server's settings, or a ConfigMap on Kubernetes); every
cost number is derived from it. The defaults are OpenCost's defaults for clusters without a billing
integration ($0.031611 per core-hour, $0.004237 per GiB-hour, $0.95 per GPU-hour), so an unconfigured
installation shows plausible, comparable numbers rather than zeros.

Prices are overridable **per node pool**: a named pool (``a100-spot``, ``h100``) sets only the prices
that differ and inherits the rest. Each metered interval records the pool it ran on; the embedded
(local) mode has exactly one pool, ``local``. An interval on a pool the book does not name is charged
the book's top-level prices.

Accelerators are priced by resource name (``nvidia.com/gpu``) and optionally by model
(``nvidia.com/gpu:H100``, the resource name, a colon and the model as GPU discovery reports it). The
lookup for a requested key is: the exact key, then the key without ``:MODEL``, then ``gpuHour``.

The config model is pydantic (like the API kinds) so that errors name the field
(``pools.h100.gpuHour: ...``); the resolved, per-pool ``Rates`` are a plain dataclass. Parsing YAML is
the caller's job (``yaml.safe_load``): this package does no I/O and depends on no YAML library.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator

from pilothouse.api.errors import FieldProblem, ManifestError, problems_from_validation_error
from pilothouse.api.meta import StrictModel

DEFAULT_CPU_CORE_HOUR = Decimal("0.031611")
DEFAULT_MEMORY_GIB_HOUR = Decimal("0.004237")
DEFAULT_GPU_HOUR = Decimal("0.95")
LOCAL_POOL = "local"
"""The one pool of embedded mode."""

Price = Annotated[Decimal, Field(ge=0, allow_inf_nan=False, description="US dollars per unit-hour")]

_ACCELERATOR_KEY = re.compile(
    r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-z0-9]([-a-z0-9._]*[a-z0-9])?(:[A-Za-z0-9]([-A-Za-z0-9._ ]*[A-Za-z0-9])?)?$"
)
_POOL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$")


def base_resource(key: str) -> str:
    """``nvidia.com/gpu:H100`` -> ``nvidia.com/gpu`` (a key without a model is returned unchanged)."""
    return key.split(":", 1)[0]


def _check_accelerator_keys(value: dict[str, Decimal]) -> dict[str, Decimal]:
    for key in value:
        if not _ACCELERATOR_KEY.match(key):
            raise ValueError(
                f"invalid accelerator {key!r}: expected a resource name such as nvidia.com/gpu, "
                "optionally with a model: nvidia.com/gpu:H100"
            )
    return value


class PoolPrices(StrictModel):
    """One node pool's overrides; a price left unset is inherited from the book's top level."""

    cpuCoreHour: Price | None = None
    memoryGiBHour: Price | None = None
    gpuHour: Price | None = Field(
        default=None, description="Any accelerator without its own entry in accelerators"
    )
    accelerators: dict[str, Price] = Field(default_factory=dict)

    @field_validator("accelerators")
    @classmethod
    def _accelerator_keys(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        return _check_accelerator_keys(value)


class PriceBook(StrictModel):
    """Top-level prices (the default pool) plus per-pool overrides. All prices in dollars per unit-hour."""

    cpuCoreHour: Price = DEFAULT_CPU_CORE_HOUR
    memoryGiBHour: Price = DEFAULT_MEMORY_GIB_HOUR
    gpuHour: Price = Field(
        default=DEFAULT_GPU_HOUR, description="Any accelerator without its own entry in accelerators"
    )
    accelerators: dict[str, Price] = Field(
        default_factory=dict, description="Per resource name, optionally per model: nvidia.com/gpu:H100"
    )
    pools: dict[str, PoolPrices] = Field(default_factory=dict)

    @field_validator("accelerators")
    @classmethod
    def _accelerator_keys(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        return _check_accelerator_keys(value)

    @field_validator("pools")
    @classmethod
    def _pool_names(cls, value: dict[str, PoolPrices]) -> dict[str, PoolPrices]:
        for name in value:
            if not _POOL_NAME.match(name):
                raise ValueError(
                    f"invalid pool name {name!r}: lower case letters, digits, '-', '.' or '_', "
                    "starting and ending with a letter or digit"
                )
        return value

    def rates(self, pool: str) -> Rates:
        """The prices that apply on ``pool``: its overrides over the top-level prices."""
        override = self.pools.get(pool)
        if override is None:
            return Rates(
                pool=pool,
                cpu_core_hour=self.cpuCoreHour,
                memory_gib_hour=self.memoryGiBHour,
                gpu_hour=self.gpuHour,
                accelerators=dict(self.accelerators),
            )
        return Rates(
            pool=pool,
            cpu_core_hour=_first(override.cpuCoreHour, self.cpuCoreHour),
            memory_gib_hour=_first(override.memoryGiBHour, self.memoryGiBHour),
            gpu_hour=_first(override.gpuHour, self.gpuHour),
            accelerators={**self.accelerators, **override.accelerators},
        )


def _first(value: Decimal | None, fallback: Decimal) -> Decimal:
    return fallback if value is None else value


@dataclass(frozen=True, slots=True)
class Rates:
    """The resolved prices of one pool, in dollars per unit-hour."""

    pool: str
    cpu_core_hour: Decimal
    memory_gib_hour: Decimal
    gpu_hour: Decimal
    accelerators: Mapping[str, Decimal]

    def accelerator(self, key: str) -> Decimal:
        """Price of one ``key`` accelerator-hour: exact key, then without ``:MODEL``, then ``gpu_hour``."""
        if key in self.accelerators:
            return self.accelerators[key]
        return self.accelerators.get(base_resource(key), self.gpu_hour)


def price_book_document(book: PriceBook) -> dict[str, Any]:
    """``book`` as the YAML/JSON document ``load_price_book`` reads: every top-level price (defaults
    included, so it shows what is in force), each pool with only the prices it overrides. Prices are
    decimal strings, so no float ever touches them; ``load_price_book`` reads them back unchanged."""
    document = book.model_dump(mode="json", exclude_none=True)
    for pool in document["pools"].values():
        if not pool["accelerators"]:
            del pool["accelerators"]  # nothing overridden: say nothing, as the YAML would
    return document


def load_price_book(data: Mapping[str, Any] | None, source: str | None = None) -> PriceBook:
    """Validate a decoded config document (e.g. from ``yaml.safe_load``) into a ``PriceBook``.

    ``None`` or an empty mapping gives the defaults. Raises ``pilothouse.api.ManifestError`` whose
    ``problems`` name each bad field (``pools.h100.gpuHour``), prefixed with ``source`` if given.
    """
    if data is None:
        return PriceBook()
    if not isinstance(data, Mapping):
        problem = FieldProblem("", f"a price book must be a mapping, got {type(data).__name__}")
        raise ManifestError([problem], source)
    try:
        return PriceBook.model_validate(dict(data))
    except ValidationError as exc:
        raise ManifestError(problems_from_validation_error(exc), source) from exc
