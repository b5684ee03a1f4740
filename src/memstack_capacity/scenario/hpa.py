"""The ``hpa:`` block of a deployment: an autoscaling/v2 ``HorizontalPodAutoscalerSpec``.

The block is the Kubernetes spec without ``scaleTargetRef``, with Kubernetes' own field
names, so it can be pasted from a manifest. It is validated the way the API server
validates it, and defaulted the way the API server defaults it:

* ``metrics`` omitted means CPU at 80 % utilisation;
* ``behavior`` omitted stays ``None``: the controller then takes its *legacy* path (a 300 s
  downscale stabilisation and a ``max(2 × current, 4)`` scale-up cap);
* ``behavior`` present is defaulted field by field (``GenerateHPAScaleUpRules`` /
  ``GenerateHPAScaleDownRules``): scale-up 0 s window, ``Pods 4/15s`` and ``Percent 100/15s``,
  ``Max``; scale-down window left ``None`` (the controller flag, 300 s), ``Percent 100/15s``,
  ``Max``.

Metrics the simulator can evaluate: ``Resource`` (``cpu`` or ``memory``, ``Utilization`` or
``AverageValue``) and ``External`` with the metric name ``queue_length`` (the worker job
backlog, a KEDA-style what-if), ``Value`` or ``AverageValue``.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, model_validator

from memstack_capacity.scenario.base import Count, Cpu, Memory, SpecModel

#: External metric names the simulator can produce.
SUPPORTED_EXTERNAL_METRICS = ("queue_length",)
#: API-server limits (``pkg/apis/autoscaling/validation``).
MAX_PERIOD_SECONDS = 1800
MAX_STABILIZATION_WINDOW_SECONDS = 3600
#: The highest utilisation target, in percent of the request (1000 × the request).
MAX_UTILIZATION_PERCENT = 100_000

_SUFFIX = {"": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
           "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}
_QUANTITY = re.compile(r"^([+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)([A-Za-z]*)$")


def _parse_quantity(value: object) -> float:
    """A plain Kubernetes quantity (``5``, ``500m``, ``2k``) as a number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and (match := _QUANTITY.match(value.strip())):
        if match.group(2) not in _SUFFIX:
            raise ValueError(f"not a quantity: unknown suffix {match.group(2)!r}")
        number = float(match.group(1)) * _SUFFIX[match.group(2)]
    else:
        raise ValueError("not a quantity such as 5, 500m or 2k")
    if not math.isfinite(number):
        raise ValueError("not a finite quantity")
    return number


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


#: A dimensionless Kubernetes quantity (external metric targets), strictly positive.
Quantity = Annotated[float, BeforeValidator(_parse_quantity), AfterValidator(_positive)]
#: A tolerance fraction, e.g. ``0.05``; never negative.
Tolerance = Annotated[float, BeforeValidator(_parse_quantity), Field(ge=0)]


class _Target(SpecModel):
    """Fields shared by every ``target`` (``MetricTarget``); the type decides which one is set."""

    def _only(self, allowed: set[str], kind: str) -> None:
        for name in ("averageUtilization", "averageValue", "value"):
            if name not in allowed and getattr(self, name, None) is not None:
                raise ValueError(f"{name} must not be set when type is {kind}")
        for name in allowed:
            if getattr(self, name, None) is None:
                raise ValueError(f"{name} is required when type is {kind}")


class CpuTarget(_Target):
    """Target of a ``cpu`` Resource metric."""

    type: Literal["Utilization", "AverageValue"]
    averageUtilization: Count | None = Field(None, gt=0, le=MAX_UTILIZATION_PERCENT,
                                             description="percent of the request")
    averageValue: Cpu | None = None

    @model_validator(mode="after")
    def _fields_match_type(self) -> CpuTarget:
        self._only({"averageUtilization"} if self.type == "Utilization" else {"averageValue"}, self.type)
        return self


class MemoryTarget(_Target):
    """Target of a ``memory`` Resource metric."""

    type: Literal["Utilization", "AverageValue"]
    averageUtilization: Count | None = Field(None, gt=0, le=MAX_UTILIZATION_PERCENT,
                                             description="percent of the request")
    averageValue: Memory | None = None

    @model_validator(mode="after")
    def _fields_match_type(self) -> MemoryTarget:
        if self.averageValue is not None and self.averageValue <= 0:
            raise ValueError("averageValue must be greater than zero")
        self._only({"averageUtilization"} if self.type == "Utilization" else {"averageValue"}, self.type)
        return self


class CpuResource(SpecModel):
    """``resource: {name: cpu, target: ...}``."""

    name: Literal["cpu"]
    target: CpuTarget


class MemoryResource(SpecModel):
    """``resource: {name: memory, target: ...}``."""

    name: Literal["memory"]
    target: MemoryTarget


class ResourceMetricSource(SpecModel):
    """``type: Resource``: per-pod CPU or memory from metrics.k8s.io."""

    type: Literal["Resource"]
    resource: Annotated[Union[CpuResource, MemoryResource], Field(discriminator="name")]

    def target_milli(self) -> int:
        """The ``averageValue`` target in milli-units (``Quantity.MilliValue()``)."""
        value = self.resource.target.averageValue
        if value is None:
            raise ValueError("no averageValue target")
        return int(round(value * 1000))


class MetricIdentifier(SpecModel):
    """``metric: {name: ...}``; label selectors are not simulated."""

    name: str

    @model_validator(mode="after")
    def _supported(self) -> MetricIdentifier:
        if self.name not in SUPPORTED_EXTERNAL_METRICS:
            raise ValueError(f"name {self.name!r} is not simulated; supported: {', '.join(SUPPORTED_EXTERNAL_METRICS)}")
        return self


class ExternalTarget(_Target):
    """Target of an External metric."""

    type: Literal["Value", "AverageValue"]
    value: Quantity | None = None
    averageValue: Quantity | None = None

    @model_validator(mode="after")
    def _fields_match_type(self) -> ExternalTarget:
        self._only({"value"} if self.type == "Value" else {"averageValue"}, self.type)
        return self


class ExternalSource(SpecModel):
    """``external: {metric: {name}, target: {...}}``."""

    metric: MetricIdentifier
    target: ExternalTarget


class ExternalMetricSource(SpecModel):
    """``type: External``: a metric not tied to pods (here the worker job backlog)."""

    type: Literal["External"]
    external: ExternalSource

    def target_milli(self) -> int:
        """The ``value`` or ``averageValue`` target in milli-units."""
        target = self.external.target
        value = target.value if target.type == "Value" else target.averageValue
        return int(round(float(value) * 1000))


MetricSpec = Annotated[Union[ResourceMetricSource, ExternalMetricSource], Field(discriminator="type")]


class HPAScalingPolicy(SpecModel):
    """One rate limit: at most ``value`` pods (or percent) per ``periodSeconds``."""

    type: Literal["Pods", "Percent"]
    value: Count = Field(gt=0)
    periodSeconds: Count = Field(gt=0, le=MAX_PERIOD_SECONDS)


class HPAScalingRules(SpecModel):
    """``behavior.scaleUp`` / ``behavior.scaleDown``; ``None`` fields are filled by defaulting."""

    stabilizationWindowSeconds: Count | None = Field(None, ge=0, le=MAX_STABILIZATION_WINDOW_SECONDS)
    selectPolicy: Literal["Max", "Min", "Disabled"] | None = None
    policies: tuple[HPAScalingPolicy, ...] | None = None
    tolerance: Tolerance | None = None

    @model_validator(mode="after")
    def _some_policy(self) -> HPAScalingRules:
        if self.policies is not None and len(self.policies) == 0 and self.selectPolicy != "Disabled":
            raise ValueError("policies: must specify at least one policy (or selectPolicy: Disabled)")
        return self


def default_scale_up_rules() -> HPAScalingRules:
    """``GenerateHPAScaleUpRules(nil)``: no window, 4 pods or 100 % per 15 s, whichever is more."""
    return HPAScalingRules(
        stabilizationWindowSeconds=0,
        selectPolicy="Max",
        policies=(HPAScalingPolicy(type="Pods", value=4, periodSeconds=15),
                  HPAScalingPolicy(type="Percent", value=100, periodSeconds=15)),
    )


def default_scale_down_rules() -> HPAScalingRules:
    """``GenerateHPAScaleDownRules(nil)``: window from the controller flag, 100 % per 15 s."""
    return HPAScalingRules(
        stabilizationWindowSeconds=None,
        selectPolicy="Max",
        policies=(HPAScalingPolicy(type="Percent", value=100, periodSeconds=15),),
    )


def merge_rules(given: HPAScalingRules | None, default: HPAScalingRules) -> HPAScalingRules:
    """Kubernetes ``copyHPAScalingRules``: each given field replaces the default's, policies as a whole."""
    if given is None:
        return default
    merged = HPAScalingRules(
        stabilizationWindowSeconds=(given.stabilizationWindowSeconds if given.stabilizationWindowSeconds is not None
                                    else default.stabilizationWindowSeconds),
        selectPolicy=given.selectPolicy if given.selectPolicy is not None else default.selectPolicy,
        policies=given.policies if given.policies is not None else default.policies,
        tolerance=given.tolerance if given.tolerance is not None else default.tolerance,
    )
    # The values are defaulted; which fields the user wrote is kept (``model_fields_set``), so
    # ``model_dump(exclude_unset=True)`` gives the block as written (the manifests emit it so).
    object.__setattr__(merged, "__pydantic_fields_set__", set(given.model_fields_set))
    return merged


def keep_given_fields(old: Any, new: Any, touched: list[tuple], path: tuple = ()) -> None:
    """After a dump-and-revalidate round trip (overrides), mark as unset again what ``old`` left unset.

    ``new`` is ``old`` revalidated from its full dump, so every defaulted field now counts as
    given. A field goes back to unset when ``old`` did not set it, no ``touched`` path (an
    override, as a tuple of keys and indices) reaches into it, and its value is unchanged.
    Only the metadata changes; values, and so the simulation, stay as they are.
    """
    if not isinstance(old, BaseModel) or type(old) is not type(new):
        if isinstance(old, tuple) and isinstance(new, tuple) and len(old) == len(new):
            for i, (a, b) in enumerate(zip(old, new)):
                keep_given_fields(a, b, touched, path + (i,))
        return
    fields_set = new.__pydantic_fields_set__
    for name in type(new).model_fields:
        here = path + (name,)
        reached = any(t[: len(here)] == here or here[: len(t)] == t for t in touched)
        if name not in old.model_fields_set and not reached and getattr(old, name) == getattr(new, name):
            fields_set.discard(name)
        keep_given_fields(getattr(old, name), getattr(new, name), touched, here)


class HorizontalPodAutoscalerBehavior(SpecModel):
    """``behavior``: defaulted per direction and per field as soon as it is present."""

    scaleUp: HPAScalingRules | None = None
    scaleDown: HPAScalingRules | None = None

    @model_validator(mode="after")
    def _default(self) -> HorizontalPodAutoscalerBehavior:
        # Frozen model: defaulting writes through object.__setattr__, once, at validation.
        object.__setattr__(self, "scaleUp", merge_rules(self.scaleUp, default_scale_up_rules()))
        object.__setattr__(self, "scaleDown", merge_rules(self.scaleDown, default_scale_down_rules()))
        return self


class HorizontalPodAutoscalerSpec(SpecModel):
    """An autoscaling/v2 ``HorizontalPodAutoscalerSpec`` without ``scaleTargetRef``."""

    minReplicas: Count = Field(1, ge=1, description="defaults to 1; 0 needs the alpha HPAScaleToZero gate")
    maxReplicas: Count = Field(ge=1)
    metrics: tuple[MetricSpec, ...] = Field(
        default_factory=lambda: (ResourceMetricSource(
            type="Resource", resource={"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}),),
        description="defaults to CPU at 80 % utilisation",
    )
    behavior: HorizontalPodAutoscalerBehavior | None = Field(None, description="None: the legacy algorithm")

    @model_validator(mode="after")
    def _bounds(self) -> HorizontalPodAutoscalerSpec:
        if self.minReplicas > self.maxReplicas:
            raise ValueError(
                f"maxReplicas ({self.maxReplicas}) must be greater than or equal to minReplicas ({self.minReplicas})"
            )
        if len(self.metrics) == 0:
            raise ValueError("metrics: must specify at least one metric (omit the key for CPU at 80 %)")
        return self

    def effective_behavior(self, downscale_stabilization_s: int = 300) -> HorizontalPodAutoscalerBehavior | None:
        """The behaviour the controller acts on: ``None`` (legacy) or both directions fully set.

        The scale-down window left ``None`` by defaulting takes the controller flag
        ``--horizontal-pod-autoscaler-downscale-stabilization`` (``downscale_stabilization_s``).
        """
        if self.behavior is None:
            return None
        down = self.behavior.scaleDown
        if down.stabilizationWindowSeconds is None:
            down = down.model_copy(update={"stabilizationWindowSeconds": int(downscale_stabilization_s)})
        return HorizontalPodAutoscalerBehavior(scaleUp=self.behavior.scaleUp, scaleDown=down)
