"""Scenario ``policy`` sections: one pydantic model per correction policy (docs/policies.md).

Each built-in policy's section derives from its firmware dataclass (``firmware_model.policies``),
which owns the parameter defaults, with the same field names; the settings every policy shares
(decoder, correction tolerance, retries) take their defaults from the firmware's ``Controller``.
What belongs to the scenario alone is defined here: whether GDC runs between corrections and the
order of tiles, and the per-policy choices that follow the paper (the threshold rule's nearest
decoder, no GDC). A user's own policy class is named by import path
(``class: "my_pkg.policies:MyPolicy"``) and gets its remaining keys as keyword arguments.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Discriminator, Field, Tag, model_validator

from firmware_model import policies as firmware
from firmware_model.controller import Controller
from twin.scenario.derive import Section, exposed_fields, field_error, section

__all__ = ["PolicyBase", "NonePolicy", "GdcPolicy", "PeriodicPolicy", "ThresholdPolicy", "DriftAwarePolicy",
           "FullRefreshPolicy", "HybridPolicy", "CustomPolicy", "Policy", "POLICY_NAMES", "CONTROLLER_FIELDS",
           "ANALOG_POLICIES", "load_policy_class"]

Decoder = Literal["drift_aware", "nearest"]
Order = Literal["index", "sensitivity"]

# The controller's settings come from its own dataclass fields (defaults, bounds, sources); the
# name, GDC and tile order are the scenario's.
CONTROLLER_FIELDS = tuple(exposed_fields(Controller))
_COMMON = {"name": (str, ...),
           "gdc": (bool, Field(False, description="global drift compensation of the MVM output between corrections")),
           "order": (Order, Field("index", description="'sensitivity': the tiles of the layers that hurt accuracy "
                                                      "most first"))}
PolicyBase = section("PolicyBase", Controller, module=__name__, annotations={"decoder": Decoder}, extra=_COMMON,
                     order=("name", "gdc", *CONTROLLER_FIELDS, "order"),
                     doc="What every policy section has: name, GDC, the controller's settings, tile order.")
PolicyBase.__sources__ = ()  # the Controller needs a configuration: its bounds are checked as fields


def _policy(model_name: str, firmware_cls: type, doc: str, **overrides: tuple[Any, Any]) -> type[Section]:
    """The section of a built-in policy: its name, its firmware parameters, scenario-level defaults."""
    name = firmware_cls().name
    extra = {"name": (Literal[name], name)} | overrides
    model = section(model_name, firmware_cls, module=__name__, base=PolicyBase, extra=extra, doc=doc)
    model.__firmware__ = firmware_cls
    return model


NonePolicy = _policy("NonePolicy", firmware.NoCorrection, "No correction: the chip is programmed once and left to drift.")
GdcPolicy = _policy("GdcPolicy", firmware.GdcOnly, "Global drift compensation only: reference reads, never a pulse.",
                    gdc=(Literal[True], True))
PeriodicPolicy = _policy("PeriodicPolicy", firmware.Periodic, "Read back and correct every tile every ``interval``.",
                         gdc=(bool, Field(True, description="GDC between corrections (pcm-numbers.md)")))
ThresholdPolicy = _policy(
    "ThresholdPolicy", firmware.Threshold,
    "arXiv 2310.00337: probe every ``interval``, correct a tile when its normalised drift exceeds ``threshold``.",
    decoder=(Decoder, Field("nearest", description="arXiv 2310.00337 (snap to the nearest multiple)")))
DriftAwarePolicy = _policy(
    "DriftAwarePolicy", firmware.DriftAware,
    "Intervals that grow geometrically (drift is logarithmic in time): ``interval``, then x ``growth`` each "
    "campaign, capped at ``max_interval``; drift-removing decoder.", gdc=(bool, True))
FullRefreshPolicy = _policy(
    "FullRefreshPolicy", firmware.FullRefresh,
    "Re-program off-level devices from an off-chip copy of the weights every ``interval``; pays for moving the "
    "weights (``bytes_per_weight`` per weight cell, energy.offchip_per_byte, timing.offchip_per_byte).",
    gdc=(bool, True))
HybridPolicy = _policy("HybridPolicy", firmware.Hybrid,
                       "HWA-trained weights (the scenario's network is fine-tuned with noise injection) plus "
                       "periodic self-correction.", gdc=(bool, True))


class CustomPolicy(PolicyBase):
    """A user's policy class by import path; every other key is passed to its constructor."""
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True,
                              serialize_by_alias=True)
    class_: str = Field(alias="class", pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    name: str = "custom"  # replaced by the class's own ``name`` when it has one (build)

    @model_validator(mode="before")
    @classmethod
    def _named_by_its_class(cls, data: Any) -> Any:
        """Without a ``name``, the policy is called what its class calls itself (reports show it)."""
        path = data.get("class", data.get("class_")) if isinstance(data, dict) else None
        if isinstance(path, str) and "name" not in data:
            try:
                name = getattr(load_policy_class(path), "name", None)
            except ValueError:
                name = None  # reported by the after-validator, against the field
            data = {**data, "name": name if isinstance(name, str) and name else "custom"}
        return data

    @model_validator(mode="after")
    def _constructible(self) -> CustomPolicy:
        """Import the class and build it with the section's other keys now, at validate time."""
        try:
            cls = load_policy_class(self.class_)
        except ValueError as exc:
            raise field_error("class", str(exc)) from None
        try:
            cls(**self.params())
        except Exception as exc:  # a user's constructor may fail in any way: report it, never crash
            raise field_error("class", f"{self.class_}(**{self.params()}) failed: {type(exc).__name__}: {exc}") \
                from None
        if self.order == "sensitivity" and "tile_order" not in inspect.signature(cls).parameters:
            raise field_error("order", f"'sensitivity' needs a class that takes tile_order; {self.class_} does not")
        return self

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def load_policy_class(path: str) -> type:
    """Import ``"package.module:ClassName"``; a clear ValueError when it is not there."""
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # a user's module may fail at import in any way (sys.exit()
        # too, which would end the twin with the module's exit code): report it, never crash
        raise ValueError(f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"module {module_name!r} has no class {class_name!r}")
    if not isinstance(cls, type):
        raise ValueError(f"{path} is a {type(cls).__name__} object, not a class")
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
ANALOG_POLICIES: tuple[str, ...] = ("none", "gdc", "full_refresh")
"""Policies that need no levels (``chip.encoding: analog``): the others correct from decoded levels."""
Policy = Annotated[Union[tuple(Annotated[m, Tag(m.model_fields["name"].default)] for m in _BUILTIN)
                         + (Annotated[CustomPolicy, Tag("custom")],)],
                   Discriminator(_policy_kind, custom_error_type="policy_name",
                                 custom_error_message=f"unknown policy name; valid: {', '.join(repr(n) for n in POLICY_NAMES)} "
                                                      "(or class: \"module:Class\")")]
