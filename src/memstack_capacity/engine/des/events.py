"""Events prepared at build time: what each config change does to the running system.

The checks and the plan live in the scenario layer (:mod:`memstack_capacity.scenario.event_checks`),
which the loader runs too, so a file's problems name the file; the build asks again, since a
scenario made in code reaches it without the loader. Traffic spikes are folded into the
workload's profile by the build (:mod:`memstack_capacity.components.spikes`).
"""

from __future__ import annotations

from memstack_capacity.errors import ScenarioError
from memstack_capacity.scenario.event_checks import config_change_plan


def prepare_events(scenario) -> dict:
    """The config-change actions by event index: ``{i: [(action, deployment, value)]}``.

    Raises ScenarioError for a config change that cannot apply to a running system.
    """
    if not scenario.events:
        return {}
    actions, problems = config_change_plan(scenario)
    if problems:
        raise ScenarioError(problems, scenario.name)
    return actions
