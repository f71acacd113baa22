"""Scenario ``policy`` sections: one pydantic model per correction policy (docs/policies.md).

The firmware's policy objects live in ``firmware_model/policies.py``; these models only validate
what a scenario file says and hand the parameters over. A user's own policy class is named by
import path (``class: "my_pkg.policies:MyPolicy"``) and gets its remaining keys as keyword
arguments.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from twin.scenario.quantities import Duration
from twin.units import DAY, HOUR

__all__ = ["PolicyBase", "NonePolicy", "GdcPolicy", "PeriodicPolicy", "ThresholdPolicy", "DriftAwarePolicy",
           "FullRefreshPolicy", "HybridPolicy", "CustomPolicy", "Policy", "POLICY_NAMES", "load_policy_class"]

PositiveDuration = Annotated[Duration, Field(gt=0)]
Decoder = Literal["drift_aware", "nearest"]
Order = Literal["index", "sensitivity"]


class PolicyBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    gdc: bool = False  # global drift compensation of the MVM output between corrections
    decoder: Decoder = "drift_aware"
    # fraction of the level spacing g_max/K; a device is corrected beyond it (assumption)
    correction_tolerance: float = Field(0.25, gt=0, le=0.5)
    max_retries: int = Field(1, ge=0)  # assumption
    order: Order = "index"  # "sensitivity": the tiles of the layers that hurt accuracy most first


class NonePolicy(PolicyBase):
    """No correction: the chip is programmed once and left to drift."""
    name: Literal["none"] = "none"
    gdc: bool = False  # the uncorrected baseline


class GdcPolicy(PolicyBase):
    """Global drift compensation only: reference reads, never a pulse."""
    name: Literal["gdc"] = "gdc"
    gdc: Literal[True] = True


class PeriodicPolicy(PolicyBase):
    """Read back and correct every tile every ``interval``."""
    name: Literal["periodic"] = "periodic"
    interval: PositiveDuration = DAY  # assumption
    gdc: bool = True  # GDC between corrections (pcm-numbers.md: GDC holds most accuracy)


class ThresholdPolicy(PolicyBase):
    """arXiv 2310.00337: probe every ``interval``, correct a tile when its normalised drift exceeds ``threshold``."""
    name: Literal["threshold"] = "threshold"
    interval: PositiveDuration = DAY  # assumption
    threshold: float = Field(0.05, gt=0)  # arXiv 2310.00337
    gdc: bool = False  # arXiv 2310.00337 (no GDC)
    decoder: Decoder = "nearest"  # arXiv 2310.00337 (snap to the nearest multiple)


class DriftAwarePolicy(PolicyBase):
    """Intervals that grow geometrically (drift is logarithmic in time): ``interval``, then x ``growth``
    each campaign, capped at ``max_interval``; drift-removing decoder."""
    name: Literal["drift_aware"] = "drift_aware"
    interval: PositiveDuration = HOUR  # first interval (assumption)
    growth: float = Field(2.0, ge=1.0)  # assumption
    max_interval: PositiveDuration = 30 * DAY  # assumption
    gdc: bool = True


class FullRefreshPolicy(PolicyBase):
    """Re-program off-level devices from an off-chip copy of the weights every ``interval``;
    pays for moving the weights (``bytes_per_weight`` per weight cell, energy.offchip_per_byte,
    timing.offchip_per_byte)."""
    name: Literal["full_refresh"] = "full_refresh"
    interval: PositiveDuration = 30 * DAY  # assumption
    bytes_per_weight: int = Field(1, ge=1)  # two 4-bit level indices per cell (assumption)
    gdc: bool = True


class HybridPolicy(PolicyBase):
    """HWA-trained weights (the scenario's network is fine-tuned with noise injection) plus
    periodic self-correction."""
    name: Literal["hybrid"] = "hybrid"
    interval: PositiveDuration = DAY  # assumption
    gdc: bool = True


class CustomPolicy(BaseModel):
    """A user's policy class by import path; every other key is passed to its constructor."""
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)
    class_: str = Field(alias="class", pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    name: str = "custom"
    gdc: bool = False
    decoder: Decoder = "drift_aware"
    correction_tolerance: float = Field(0.25, gt=0, le=0.5)
    max_retries: int = Field(1, ge=0)
    order: Order = "index"

    @model_validator(mode="after")
    def _importable(self) -> "CustomPolicy":
        load_policy_class(self.class_)
        return self

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def load_policy_class(path: str) -> type:
    """Import ``"package.module:ClassName"``; a clear ValueError when it is not there."""
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ValueError(f"module {module_name!r} has no class {class_name!r}")
    missing = [m for m in ("next_campaign", "tiles", "should_correct", "campaign_finished") if not hasattr(cls, m)]
    if missing:
        raise ValueError(f"{path} does not implement the policy interface (missing {', '.join(missing)}); "
                         "see docs/policies.md")
    return cls


def _policy_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "custom" if "class" in value or "class_" in value else str(value.get("name", "periodic"))
    return "custom" if isinstance(value, CustomPolicy) else getattr(value, "name", "periodic")


_BUILTIN = (NonePolicy, GdcPolicy, PeriodicPolicy, ThresholdPolicy, DriftAwarePolicy, FullRefreshPolicy,
            HybridPolicy)
POLICY_NAMES: tuple[str, ...] = tuple(m.model_fields["name"].default for m in _BUILTIN)
Policy = Annotated[Union[tuple(Annotated[m, Tag(m.model_fields["name"].default)] for m in _BUILTIN)
                         + (Annotated[CustomPolicy, Tag("custom")],)],
                   Discriminator(_policy_kind, custom_error_type="policy_name",
                                 custom_error_message=f"unknown policy name; valid: {', '.join(repr(n) for n in POLICY_NAMES)} "
                                                      "(or class: \"module:Class\")")]
