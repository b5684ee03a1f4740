"""The manifests of the bundled ``scenarios/peak.yaml``: the real deployment, object by object.

``peak.yaml`` is written from the real deployment's settings, so the manifests it gives
must be the real deployment's (``manifest_facts.json``), compared exactly as
``test_manifests.py`` compares :meth:`ManifestInputs.upstream`. A what-if made of
scenario overrides (:meth:`Scenario.with_overrides`) must change exactly what it names.

Spelling of quantities: the manifests write **canonical** quantities (``format_cpu``,
``format_memory``), so the CPU limit upstream writes as ``2000m`` comes out as ``2``.
Kubernetes stores both as the same quantity. The scenario model keeps numbers (cores,
bytes), not the text the user typed, and the same value can arrive from YAML, from
``--set deployments.api.resources.limits.cpu=2`` or from a sweep grid; one canonical
spelling makes the manifests of those runs identical and diff-able whatever the route.
Preserving the user's text would need the scenario model to carry strings beside its
numbers for one cosmetic gain, so the comparison with upstream is of quantities.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_manifests import FACTS_PATH, diff, diff_lists, expected_from_fact, key_of, normalize_quantities

from memstack_capacity.outputs.manifests.files import ManifestInputs, build_manifests, inputs_from_scenario
from memstack_capacity.scenario.load import load_scenario

PEAK = Path(__file__).resolve().parents[1] / "scenarios" / "peak.yaml"


@pytest.fixture(scope="module")
def peak():
    return load_scenario(PEAK)


@pytest.fixture(scope="module")
def peak_objects(peak):
    return build_manifests(inputs_from_scenario(peak))


@pytest.fixture(scope="module")
def facts():
    import json

    return json.loads(FACTS_PATH.read_text(encoding="utf-8"))


def test_peak_gives_the_upstream_object_list(facts, peak_objects):
    assert [key_of(o) for o in peak_objects] == [f"{f['kind']}/{f['name']}" for f in facts["objects"]]
    assert [o["apiVersion"] for o in peak_objects] == [f["apiVersion"] for f in facts["objects"]]


@pytest.mark.parametrize("index", range(16))
def test_peak_object_equals_upstream_field_by_field(facts, peak_objects, index):
    fact, ours = facts["objects"][index], peak_objects[index]
    if fact["kind"] == "Secret":
        assert list(ours["stringData"]) == fact["stringData_keys"]
        assert {k: ours["stringData"][k] for k in fact["non_secret_values"]} == fact["non_secret_values"]
        return
    problems = diff(normalize_quantities(ours), normalize_quantities(expected_from_fact(fact)))
    assert not problems, f"{key_of(ours)} differs from upstream:\n  " + "\n  ".join(problems)


def test_peak_inputs_are_exactly_upstream(peak):
    assert inputs_from_scenario(peak) == ManifestInputs.upstream()


def test_peak_hpa_behavior_is_emitted_as_written(peak_objects):
    # Upstream's scaleDown sets no selectPolicy (Kubernetes defaults it to Max); neither do we.
    for obj in peak_objects:
        if obj["kind"] == "HorizontalPodAutoscaler":
            behavior = obj["spec"]["behavior"]
            assert "selectPolicy" not in behavior["scaleDown"]
            assert behavior["scaleUp"]["selectPolicy"] == "Max"


def test_peak_simulation_still_defaults_select_policy(peak):
    # Emitting as written must not change what the simulated controller does.
    for dep in peak.deployments.values():
        assert dep.hpa.effective_behavior().scaleDown.selectPolicy == "Max"


def test_peak_quantities_are_canonical(peak_objects):
    # The decision stated in the module docstring: 2000m (as written) is emitted as 2.
    for obj in peak_objects:
        if obj["kind"] == "Deployment":
            res = obj["spec"]["template"]["spec"]["containers"][0]["resources"]
            assert res == {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}}


WHAT_IF = {
    "deployments.api.hpa.maxReplicas": 30,
    "datastores.postgres.pool.pool_size": 10,
    "deployments.api.resources.limits.cpu": "1",
    "deployments.api.resources.requests.memory": "1Gi",
}


def test_what_if_overrides_change_exactly_what_they_name(peak, peak_objects):
    changed = build_manifests(inputs_from_scenario(peak.with_overrides(WHAT_IF)))
    container = "Deployment/memstack-api.spec.template.spec.containers[0].resources"
    assert sorted(diff_lists(peak_objects, changed)) == sorted([
        "HorizontalPodAutoscaler/memstack-api-hpa.spec.maxReplicas",
        "ConfigMap/memstack-config.data.POSTGRES_POOL_SIZE",
        f"{container}.limits.cpu",
        f"{container}.requests.memory",
    ])
    by_key = {key_of(o): o for o in changed}
    assert by_key["HorizontalPodAutoscaler/memstack-api-hpa"]["spec"]["maxReplicas"] == 30
    assert by_key["ConfigMap/memstack-config"]["data"]["POSTGRES_POOL_SIZE"] == "10"
    res = by_key["Deployment/memstack-api"]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}


def test_no_op_overrides_change_nothing(peak, peak_objects):
    # A round trip through overrides (every default now "given") must not add defaulted hpa fields.
    same = peak.with_overrides({"deployments.api.replicas": 3})
    assert not diff_lists(peak_objects, build_manifests(inputs_from_scenario(same)))


def test_override_inside_behavior_is_emitted(peak):
    changed = peak.with_overrides({"deployments.api.hpa.behavior.scaleDown.selectPolicy": "Min"})
    hpa = inputs_from_scenario(changed).api.hpa
    assert hpa["behavior"]["scaleDown"] == {"stabilizationWindowSeconds": 300, "selectPolicy": "Min",
                                            "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]}
    assert changed.deployments["api"].hpa.behavior.scaleDown.selectPolicy == "Min"
