"""The flow model (``engine="fluid"``, docs/fluid.md): the scenario solved as rates, not requests.

Owns ``engine`` (the time-stepped solve and its record), ``flow`` (demand and service
moments), ``tiers`` (pointwise-stationary tiers), ``pods`` (lifecycle and the HPA on virtual
pods), ``noise`` (what metrics-server would see) and ``report`` (samples, summary figures,
caveats).

May import scenario, components, errors, theory and engine.record/rng/capabilities; must not
import another engine nor engine.run.
"""
