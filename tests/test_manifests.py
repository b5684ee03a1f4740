"""The generated Kubernetes manifests: equal to the real deployment, valid, and driven by the inputs.

The real deployment is described field by field in ``tests/data/upstream/manifest_facts.json``
(relative to the repository root). Those facts are condensed (e.g. HPA metrics are flat,
the worker's missing readiness probe is ``null``), so :func:`expected_from_fact` turns
each one into the Kubernetes object it describes, and the comparison is of whole objects.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from memstack_capacity.outputs.manifests.files import (
    MANIFEST_FILES,
    ManifestInputs,
    PoolSettings,
    ProbeTiming,
    Strategy,
    build_manifests,
    manifest_file,
    render_manifests,
    write_manifests,
)
from memstack_capacity.scenario.quantities import format_cpu, format_memory, parse_cpu, parse_memory

DATA = Path(__file__).resolve().parent / "data"
#: The real deployment's 16 objects, field by field (tests/data/upstream/README.md).
FACTS_PATH = DATA / "upstream" / "manifest_facts.json"
#: prometheus-operator v0.93.0's CRDs, byte for byte (tests/data/crds/README.md).
SCHEMAS = DATA / "crds"
CRD_FILES = {
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
}
SECRET_SETTINGS = {"ALGORITHM": "HS256", "ACCESS_TOKEN_EXPIRE_MINUTES": "30", "LLM_PROVIDER": "gemini"}


# ---------------------------------------------------------------- helpers


def diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Every path at which two JSON-like values differ (keys, list lengths, leaves, types)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in list(a) + [k for k in b if k not in a]:
            where = f"{path}.{key}"
            if key not in a:
                out.append(f"{where}: missing on the left")
            elif key not in b:
                out.append(f"{where}: missing on the right")
            else:
                out += diff(a[key], b[key], where)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items vs {len(b)}"]
        return [p for i, (x, y) in enumerate(zip(a, b)) for p in diff(x, y, f"{path}[{i}]")]
    if type(a) is not type(b) or a != b:
        return [f"{path}: {a!r} != {b!r}"]
    return []


def key_of(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def diff_lists(old: list[dict], new: list[dict]) -> list[str]:
    assert [key_of(o) for o in old] == [key_of(o) for o in new]
    return [f"{key_of(o)}{p.split(':')[0]}" for o, n in zip(old, new) for p in diff(o, n)]


def normalize_quantities(obj: dict[str, Any]) -> dict[str, Any]:
    """Container resources as numbers, so ``2000m`` and ``2`` compare equal."""
    obj = copy.deepcopy(obj)
    if obj["kind"] == "Deployment":
        for container in obj["spec"]["template"]["spec"]["containers"]:
            for block in container.get("resources", {}).values():
                for name, value in block.items():
                    block[name] = parse_cpu(value) if name == "cpu" else parse_memory(value)
    return obj


@pytest.fixture(scope="module")
def facts() -> dict[str, Any]:
    return json.loads(FACTS_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def upstream_objects() -> list[dict[str, Any]]:
    return build_manifests(ManifestInputs.upstream())


# ------------------------------------------------- facts -> Kubernetes objects


def _meta(fact: dict[str, Any], **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": fact["name"]}
    if "namespace" in fact:
        meta["namespace"] = fact["namespace"]
    if "labels" in fact:
        meta["labels"] = fact["labels"]
    meta.update(extra)
    return meta


def _container(c: dict[str, Any]) -> dict[str, Any]:
    assert set(c) <= {"name", "image", "imagePullPolicy", "ports", "env_secretKeyRefs", "envFrom", "resources",
                      "livenessProbe", "readinessProbe", "volumeMounts"}, sorted(c)
    refs = c["env_secretKeyRefs"]
    out = {
        "name": c["name"], "image": c["image"], "imagePullPolicy": c["imagePullPolicy"], "ports": c["ports"],
        "env": [{"name": k, "valueFrom": {"secretKeyRef": {"name": refs["secret"], "key": k}}} for k in refs["keys"]],
        "envFrom": [{kind: {"name": name} for kind, name in ref.items()} for ref in c["envFrom"]],
        "resources": c["resources"],
    }
    for probe in ("livenessProbe", "readinessProbe"):
        spec = c.get(probe)
        if spec is None:
            continue
        spec = dict(spec)
        if isinstance(spec.get("exec"), list):
            spec["exec"] = {"command": spec["exec"]}
        out[probe] = spec
    out["volumeMounts"] = c["volumeMounts"]
    return out


def _affinity(a: dict[str, Any]) -> dict[str, Any]:
    # The facts flatten PodAffinityTerm into the weighted term; Kubernetes nests it.
    rules = a["podAntiAffinity"]
    preferred = [
        {"weight": t["weight"], "podAffinityTerm": {k: v for k, v in t.items() if k != "weight"}}
        for t in rules.get("preferredDuringSchedulingIgnoredDuringExecution", [])
    ]
    assert set(rules) == {"preferredDuringSchedulingIgnoredDuringExecution"}, rules
    return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": preferred}}


def _hpa_behavior(b: dict[str, Any]) -> dict[str, Any]:
    return {side: {k: v for k, v in rules.items() if v is not None} for side, rules in b.items()}


def expected_from_fact(fact: dict[str, Any]) -> dict[str, Any]:
    """The Kubernetes object a fact entry describes (the Secret is compared separately)."""
    kind = fact["kind"]
    head = {"apiVersion": fact["apiVersion"], "kind": kind}
    ignored = {"apiVersion", "kind", "name", "namespace", "file", "note", "commented_out_annotations"}
    used: set[str]
    if kind == "Namespace":
        obj, used = {**head, "metadata": _meta(fact)}, {"labels"}
    elif kind == "ConfigMap":
        obj, used = {**head, "metadata": _meta(fact), "data": fact["data"]}, {"data"}
    elif kind == "Deployment":
        pod = {
            "serviceAccountName": fact["serviceAccountName"],
            "securityContext": fact["podSecurityContext"],
            "containers": [_container(c) for c in fact["containers"]],
            "volumes": fact["volumes"],
        }
        if fact["affinity"] is not None:
            pod["affinity"] = _affinity(fact["affinity"])
        strategy = fact["strategy"]
        obj = {**head, "metadata": _meta(fact), "spec": {
            "replicas": fact["replicas"],
            "strategy": {"type": strategy["type"], "rollingUpdate": {
                "maxSurge": strategy["maxSurge"], "maxUnavailable": strategy["maxUnavailable"]}},
            "selector": {"matchLabels": fact["selector"]},
            "template": {"metadata": {"labels": fact["selector"], "annotations": fact["podAnnotations"]}, "spec": pod},
        }}
        used = {"labels", "selector", "replicas", "strategy", "podAnnotations", "serviceAccountName",
                "podSecurityContext", "containers", "volumes", "affinity"}
    elif kind == "Service":
        obj = {**head, "metadata": _meta(fact),
               "spec": {"type": fact["type"], "ports": fact["ports"], "selector": fact["selector"]}}
        used = {"labels", "type", "ports", "selector"}
    elif kind == "ServiceAccount":
        obj, used = {**head, "metadata": _meta(fact)}, set()
    elif kind == "HorizontalPodAutoscaler":
        metrics = [{"type": m["type"], "resource": {"name": m["name"], "target": m["target"]}} for m in fact["metrics"]]
        obj = {**head, "metadata": _meta(fact), "spec": {
            "scaleTargetRef": fact["scaleTargetRef"], "minReplicas": fact["minReplicas"],
            "maxReplicas": fact["maxReplicas"], "metrics": metrics, "behavior": _hpa_behavior(fact["behavior"])}}
        used = {"scaleTargetRef", "minReplicas", "maxReplicas", "metrics", "behavior"}
    elif kind == "PodDisruptionBudget":
        budget = {k: fact[k] for k in ("minAvailable", "maxUnavailable") if k in fact}
        obj = {**head, "metadata": _meta(fact), "spec": {**budget, "selector": {"matchLabels": fact["selector"]}}}
        used = {*budget, "selector"}
    elif kind == "Ingress":
        rules = [{"host": r["host"], "http": {"paths": [
            {"path": p["path"], "pathType": p["pathType"],
             "backend": {"service": {"name": p["service"], "port": {"number": p["port"]}}}} for p in r["paths"]]}}
            for r in fact["rules"]]
        obj = {**head, "metadata": _meta(fact, annotations=fact["annotations"]), "spec": {
            "ingressClassName": fact["ingressClassName"], "tls": fact["tls"], "rules": rules}}
        used = {"annotations", "ingressClassName", "tls", "rules"}
    elif kind == "ServiceMonitor":
        obj = {**head, "metadata": _meta(fact),
               "spec": {"selector": {"matchLabels": fact["selector"]}, "endpoints": fact["endpoints"]}}
        used = {"labels", "selector", "endpoints"}
    elif kind == "PrometheusRule":
        groups = [{"name": g["name"], "interval": g["interval"], "rules": [
            {"alert": r["alert"], "expr": r["expr"], "for": r["for"], "labels": {"severity": r["severity"]}}
            for r in g["rules"]]} for g in fact["groups"]]
        obj, used = {**head, "metadata": _meta(fact), "spec": {"groups": groups}}, {"labels", "groups"}
    else:
        raise AssertionError(f"no conversion for fact kind {kind}")
    unread = set(fact) - ignored - used
    assert not unread, f"{kind}/{fact['name']}: fact fields not compared: {sorted(unread)}"
    return obj


# ------------------------------------------------------ equivalence with upstream


def test_object_list_matches_upstream(facts, upstream_objects):
    assert len(upstream_objects) == facts["object_count"] == len(facts["objects"]) == 16
    assert [key_of(o) for o in upstream_objects] == [f"{f['kind']}/{f['name']}" for f in facts["objects"]]
    assert [o["apiVersion"] for o in upstream_objects] == [f["apiVersion"] for f in facts["objects"]]
    assert [manifest_file(o) for o in upstream_objects] == [Path(f["file"]).name for f in facts["objects"]]


@pytest.mark.parametrize("index", range(16))
def test_object_equals_upstream_field_by_field(facts, upstream_objects, index):
    fact = facts["objects"][index]
    ours = upstream_objects[index]
    if fact["kind"] == "Secret":
        assert ours["type"] == fact["type"]
        assert ours["metadata"] == {"name": fact["name"], "namespace": fact["namespace"]}
        assert set(ours) == {"apiVersion", "kind", "metadata", "type", "stringData"}
        assert list(ours["stringData"]) == fact["stringData_keys"]
        assert {k: ours["stringData"][k] for k in fact["non_secret_values"]} == fact["non_secret_values"]
        return
    expected = expected_from_fact(fact)
    problems = diff(normalize_quantities(ours), normalize_quantities(expected))
    assert not problems, f"{key_of(ours)} differs from upstream:\n  " + "\n  ".join(problems)


def test_resource_quantities_use_canonical_spelling(upstream_objects):
    # Upstream writes the CPU limit as 2000m; we write the same quantity as 2 (format_cpu).
    for obj in upstream_objects:
        if obj["kind"] != "Deployment":
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            res = container["resources"]
            assert res == {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
            for block in res.values():
                assert format_cpu(parse_cpu(block["cpu"])) == block["cpu"]
                assert format_memory(parse_memory(block["memory"])) == block["memory"]


def test_ingress_leaves_rate_limits_out_as_upstream(facts, upstream_objects):
    fact = next(f for f in facts["objects"] if f["kind"] == "Ingress")
    ingress = next(o for o in upstream_objects if o["kind"] == "Ingress")
    assert not set(fact["commented_out_annotations"]) & set(ingress["metadata"]["annotations"])


# ------------------------------------------------------------------- no secrets


_CREDENTIAL_LIKE = [
    re.compile(r"\b[0-9a-fA-F]{32,}\b"),  # hex keys (the encryption key is 64 hex upstream)
    re.compile(r"AIza[0-9A-Za-z_\-]{20,}"),  # Google API keys
    re.compile(r"\bsk-[0-9A-Za-z]{16,}"),  # OpenAI-style keys
    re.compile(r"\btvly-[0-9A-Za-z]{8,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    # long base64-ish blobs with digits and both cases (plain identifiers have no digits)
    re.compile(r"(?=[A-Za-z0-9+/]*\d)(?=[A-Za-z0-9+/]*[a-z])(?=[A-Za-z0-9+/]*[A-Z])[A-Za-z0-9+/]{32,}"),
]


def test_secret_holds_placeholders_only(upstream_objects):
    secret = next(o for o in upstream_objects if o["kind"] == "Secret")
    assert "data" not in secret
    for key, value in secret["stringData"].items():
        if key in SECRET_SETTINGS:
            assert value == SECRET_SETTINGS[key]
        else:
            assert value.startswith("CHANGE-ME"), f"{key} is not an obvious placeholder: {value!r}"


def test_no_credential_looking_text_in_any_file(upstream_objects):
    for name, text in render_manifests(upstream_objects).items():
        for pattern in _CREDENTIAL_LIKE:
            assert not pattern.search(text), f"{name} has credential-like text matching {pattern.pattern}"


# ------------------------------------------------------------------ YAML files


def test_yaml_files_round_trip(tmp_path, upstream_objects):
    paths = write_manifests(upstream_objects, tmp_path / "manifests")
    assert [p.name for p in paths] == list(MANIFEST_FILES)
    assert sorted(p.name for p in (tmp_path / "manifests").iterdir()) == sorted(MANIFEST_FILES)
    loaded = []
    for path in paths:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
        assert docs and all(manifest_file(d) == path.name for d in docs)
        loaded += docs
    assert loaded == upstream_objects
    assert [len(list(yaml.safe_load_all(p.read_text()))) for p in paths] == [1, 1, 1, 5, 4, 1, 3]


def test_configmap_values_stay_strings_after_yaml(tmp_path, upstream_objects):
    (path,) = [p for p in write_manifests(upstream_objects, tmp_path) if p.name == "configmap.yaml"]
    data = yaml.safe_load(path.read_text())["data"]
    assert len(data) == 30 and all(isinstance(v, str) for v in data.values())


# ------------------------------------------------------------------- what-if


def _replace_api(inputs: ManifestInputs, **changes: Any) -> ManifestInputs:
    return dataclasses.replace(inputs, api=dataclasses.replace(inputs.api, **changes))


def test_what_if_changes_exactly_the_changed_fields():
    base = ManifestInputs.upstream()
    hpa = copy.deepcopy(dict(base.api.hpa))
    hpa["maxReplicas"] = 30
    changed = dataclasses.replace(
        _replace_api(base, hpa=hpa, cpu_request_cores=1.0, memory_limit_bytes=3 * 2**30),
        pool=dataclasses.replace(base.pool, pool_size=35),
    )
    old, new = build_manifests(base), build_manifests(changed)
    container = "Deployment/memstack-api.spec.template.spec.containers[0].resources"
    assert sorted(diff_lists(old, new)) == sorted([
        "ConfigMap/memstack-config.data.POSTGRES_POOL_SIZE",
        f"{container}.requests.cpu",
        f"{container}.limits.memory",
        "HorizontalPodAutoscaler/memstack-api-hpa.spec.maxReplicas",
    ])
    by_key = {key_of(o): o for o in new}
    assert by_key["ConfigMap/memstack-config"]["data"]["POSTGRES_POOL_SIZE"] == "35"
    assert by_key["HorizontalPodAutoscaler/memstack-api-hpa"]["spec"]["maxReplicas"] == 30
    res = by_key["Deployment/memstack-api"]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res == {"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "3Gi"}}


def test_other_simulated_fields_reach_the_manifests():
    base = ManifestInputs.upstream()
    inputs = dataclasses.replace(
        _replace_api(base, replicas=5, processes=4, anti_affinity="required", pdb={"maxUnavailable": 1},
                     strategy=Strategy("RollingUpdate", "25%", "25%"),
                     readiness=ProbeTiming(initial_delay_s=2, period_s=2, timeout_s=1, failure_threshold=5),
                     hpa={k: v for k, v in base.api.hpa.items() if k != "behavior"}),
        worker=dataclasses.replace(base.worker, hpa=None, pdb=None),
        ingress_timeout_s=90.5,
        pool=PoolSettings(pool_size=10, max_overflow=0, pool_recycle_s=1800, pool_pre_ping=False),
    )
    objs = {key_of(o): o for o in build_manifests(inputs)}
    api = objs["Deployment/memstack-api"]["spec"]
    container = api["template"]["spec"]["containers"][0]
    assert api["replicas"] == 5
    assert api["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    assert container["command"][-2:] == ["--workers", "4"] and container["command"][0] == "uvicorn"
    assert "args" not in container
    assert container["readinessProbe"] == {"httpGet": {"path": "/ready", "port": "http"}, "initialDelaySeconds": 2,
                                           "periodSeconds": 2, "timeoutSeconds": 1, "failureThreshold": 5}
    anti = api["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert list(anti) == ["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert objs["PodDisruptionBudget/memstack-api-pdb"]["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in objs["PodDisruptionBudget/memstack-api-pdb"]["spec"]
    assert "behavior" not in objs["HorizontalPodAutoscaler/memstack-api-hpa"]["spec"]
    assert "HorizontalPodAutoscaler/memstack-worker-hpa" not in objs
    assert "PodDisruptionBudget/memstack-worker-pdb" not in objs
    annotations = objs["Ingress/memstack-ingress"]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "91"
    assert annotations["nginx.ingress.kubernetes.io/proxy-connect-timeout"] == "60"
    data = objs["ConfigMap/memstack-config"]["data"]
    assert (data["API_WORKERS"], data["POSTGRES_POOL_SIZE"], data["POSTGRES_MAX_OVERFLOW"],
            data["POSTGRES_POOL_RECYCLE"], data["POSTGRES_POOL_PRE_PING"]) == ("4", "10", "0", "1800", "false")


def test_one_process_emits_no_command(upstream_objects):
    for obj in upstream_objects:
        if obj["kind"] == "Deployment":
            container = obj["spec"]["template"]["spec"]["containers"][0]
            assert "command" not in container and "args" not in container


def test_namespace_reaches_every_object():
    objs = build_manifests(dataclasses.replace(ManifestInputs.upstream(), namespace="capacity-test"))
    assert objs[0]["metadata"] == {"name": "capacity-test", "labels": {"name": "capacity-test", "app": "memstack"}}
    assert all(o["metadata"]["namespace"] == "capacity-test" for o in objs[1:])
    text = "".join(render_manifests(objs).values())
    assert 'namespace="capacity-test"' in text and 'namespace="memstack"' not in text


def test_without_worker_no_worker_objects():
    objs = build_manifests(dataclasses.replace(ManifestInputs.upstream(), worker=None))
    assert not [key_of(o) for o in objs if "worker" in key_of(o)]
    rule = next(o for o in objs if o["kind"] == "PrometheusRule")
    assert [g["name"] for g in rule["spec"]["groups"]] == ["memstack_api", "memstack_resources"]
    assert "worker-deployment.yaml" not in render_manifests(objs)


def test_outputs_share_nothing_with_inputs():
    inputs = ManifestInputs.upstream()
    first = build_manifests(inputs)
    first[6]["spec"]["behavior"]["scaleUp"]["policies"].clear()
    first[7]["spec"]["minAvailable"] = 0
    assert build_manifests(inputs) == build_manifests(ManifestInputs.upstream())


@pytest.mark.parametrize("change, message", [
    (dict(name="worker"), "must be named 'api'"),
    (dict(pdb={"minAvailable": 1, "maxUnavailable": 1}), "exactly one of"),
    (dict(hpa={"maxReplicas": 3, "scaleTargetRef": {}}), "scaleTargetRef"),
    (dict(anti_affinity="soft"), "anti_affinity"),
    (dict(processes=0), "processes"),
    (dict(cpu_request_cores=0), "cpu_request_cores"),
])
def test_invalid_inputs_are_refused(change, message):
    base = ManifestInputs.upstream()
    with pytest.raises(ValueError, match=message):
        _replace_api(base, **change)


def test_worker_runs_one_process():
    base = ManifestInputs.upstream()
    with pytest.raises(ValueError, match="one Temporal worker"):
        dataclasses.replace(base.worker, processes=2)


# ---------------------------------------------------- schema validation


def _k8s_versions() -> list[str]:
    try:
        from kubernetes_validate import utils
        from packaging.version import Version
    except ImportError:
        return []
    found = {".".join(v.split(".")[:2]) for v in utils.all_versions()}
    return sorted((v for v in found if Version(v) >= Version("1.25")), key=Version)


K8S_VERSIONS = _k8s_versions()


def _variant_inputs() -> ManifestInputs:
    """A configuration that exercises the non-upstream branches of every builder."""
    base = ManifestInputs.upstream()
    return dataclasses.replace(
        _replace_api(base, processes=3, anti_affinity="required", pdb={"maxUnavailable": "25%"},
                     strategy=Strategy("RollingUpdate", "50%", 0), termination_grace_period_s=45,
                     readiness=ProbeTiming(5, 5, 2, 3, success_threshold=2),
                     hpa={k: v for k, v in base.api.hpa.items() if k != "behavior"}),
        worker=dataclasses.replace(base.worker, anti_affinity="preferred", strategy=Strategy("Recreate"),
                                   readiness=ProbeTiming(5, 10, 2, 3), cpu_limit_cores=None, memory_limit_bytes=None),
        ingress_timeout_s=300,
    )


@pytest.fixture(scope="module")
def all_generated() -> list[dict[str, Any]]:
    return build_manifests(ManifestInputs.upstream()) + build_manifests(_variant_inputs())


@pytest.mark.parametrize("version", K8S_VERSIONS or [None])
def test_core_objects_validate_strictly(version, all_generated):
    if version is None:
        pytest.skip("kubernetes-validate is not installed (pip install -e '.[test]')")
    import kubernetes_validate

    errors, validated = [], 0
    for obj in all_generated:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
            validated += 1
        except kubernetes_validate.SchemaNotFoundError:
            # Only the Prometheus Operator CRDs lack a built-in schema; they are checked below.
            assert obj["kind"] in CRD_FILES, f"{key_of(obj)}: no schema in Kubernetes {version}"
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{key_of(obj)} at {'.'.join(map(str, exc.path))}: {exc.message}")
    assert not errors, f"Kubernetes {version} (strict):\n  " + "\n  ".join(errors)
    assert validated == sum(o["kind"] not in CRD_FILES for o in all_generated)


def _crd_schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load((SCHEMAS / CRD_FILES[kind]).read_text(encoding="utf-8"))
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]
    # Go's RE2 accepts a flag group after ^, Python's re does not; move it to the front.
    groups = schema.get("properties", {}).get("spec", {}).get("properties", {}).get("groups", {})
    prs = groups.get("items", {}).get("properties", {}).get("partial_response_strategy")
    if prs and prs.get("pattern") == "^(?i)(abort|warn)?$":
        prs["pattern"] = "(?i)^(abort|warn)?$"
    return schema


def _strict(schema: Any) -> Any:
    """The schema with unknown properties forbidden wherever properties are listed (kubectl's strict)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        open_ended = "additionalProperties" in out or out.get("x-kubernetes-preserve-unknown-fields")
        if "properties" in out and not open_ended:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@pytest.mark.parametrize("kind", sorted(CRD_FILES))
def test_crd_objects_validate_against_operator_schema(kind, all_generated):
    jsonschema = pytest.importorskip("jsonschema")
    schema = _strict(_crd_schema(kind))
    # metadata is opaque in a CRD schema; unknown keys there are the API server's business.
    schema["properties"]["metadata"].pop("additionalProperties", None)
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    objects = [o for o in all_generated if o["kind"] == kind]
    assert objects
    errors = [f"{key_of(o)} at {'.'.join(map(str, e.path))}: {e.message}"
              for o in objects for e in validator.iter_errors(o)]
    assert not errors, "\n".join(errors)


# ------------------------------------------------------------ from a scenario


def _probe(initial: int, period: int, timeout: int, failures: int) -> dict[str, int]:
    return {"initialDelaySeconds": initial, "periodSeconds": period, "timeoutSeconds": timeout,
            "failureThreshold": failures}


def _upstream_scenario_data() -> dict[str, Any]:
    """A scenario whose deployment settings are upstream's, written as a user would."""
    upstream = ManifestInputs.upstream()
    resources = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "2000m", "memory": "2Gi"}}
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    return {
        "name": "upstream-manifests",
        "duration": "10m",
        "workload": {
            "arrivals": {"profile": [{"at": "0s", "rps": 50}]},
            "timeout": "60s",
            "requests": [{"name": "ping", "weight": 1,
                          "steps": [{"cpu": {"dist": "exponential", "mean": "5ms"}}, {"enqueue": "episode"}]}],
            "jobs": [{"name": "episode", "steps": [{"cpu": {"dist": "exponential", "mean": "5ms"}}]}],
        },
        "deployments": {
            "api": {"replicas": 3, "resources": resources, "strategy": strategy,
                    "readinessProbe": _probe(10, 5, 3, 3), "livenessProbe": _probe(30, 10, 5, 3),
                    "anti_affinity": "preferred", "hpa": copy.deepcopy(dict(upstream.api.hpa)),
                    "pdb": {"minAvailable": 2}},
            "worker": {"replicas": 2, "resources": resources, "strategy": strategy, "consumes": ["episode"],
                       "livenessProbe": _probe(30, 30, 5, 3), "hpa": copy.deepcopy(dict(upstream.worker.hpa)),
                       "pdb": {"minAvailable": 1}},
        },
        "datastores": {"postgres": {"kind": "postgresql", "pool": {
            "pool_size": 20, "max_overflow": 40, "pool_recycle": "1h", "pool_pre_ping": True}}},
    }


def _parse(data: dict[str, Any]):
    from memstack_capacity.scenario.load import parse_scenario

    return parse_scenario(data, "test")


def test_upstream_scenario_gives_upstream_manifests():
    # Exactly, with no normalisation: the hpa blocks come out as written (scaleDown has no
    # selectPolicy upstream, and none is added), the CPU limit "2000m" as canonical "2".
    from memstack_capacity.outputs.manifests.files import inputs_from_scenario

    scenario = _parse(_upstream_scenario_data())
    assert inputs_from_scenario(scenario) == ManifestInputs.upstream()
    assert not diff_lists(build_manifests(inputs_from_scenario(scenario)), build_manifests(ManifestInputs.upstream()))


def test_scenario_values_reach_the_manifests():
    from memstack_capacity.outputs.manifests.files import inputs_from_scenario

    data = _upstream_scenario_data()
    api = data["deployments"]["api"]
    api.update(processes=2, anti_affinity="required", terminationGracePeriodSeconds=45, replicas=4)
    api["resources"] = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    del api["hpa"]["behavior"]
    data["workload"]["timeout"] = "2m"
    data["datastores"]["postgres"]["pool"] = {"pool_size": 5, "max_overflow": -1, "pool_pre_ping": False}
    inputs = inputs_from_scenario(_parse(data))
    objs = {key_of(o): o for o in build_manifests(inputs)}
    pod = objs["Deployment/memstack-api"]["spec"]["template"]["spec"]
    assert objs["Deployment/memstack-api"]["spec"]["replicas"] == 4
    assert pod["terminationGracePeriodSeconds"] == 45
    assert pod["containers"][0]["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"},
                                                 "limits": {"memory": "1Gi"}}
    assert pod["containers"][0]["command"][-2:] == ["--workers", "2"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in pod["affinity"]["podAntiAffinity"]
    assert "behavior" not in objs["HorizontalPodAutoscaler/memstack-api-hpa"]["spec"]
    assert objs["Ingress/memstack-ingress"]["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/proxy-read-timeout"] == "120"
    data_ = objs["ConfigMap/memstack-config"]["data"]
    assert (data_["POSTGRES_POOL_SIZE"], data_["POSTGRES_MAX_OVERFLOW"], data_["POSTGRES_POOL_RECYCLE"],
            data_["POSTGRES_POOL_PRE_PING"], data_["API_WORKERS"]) == ("5", "-1", "-1", "false", "2")


def test_minimal_scenario_has_no_worker_and_upstream_pool():
    from memstack_capacity.outputs.manifests.files import inputs_from_scenario

    data = _upstream_scenario_data()
    del data["deployments"]["worker"], data["datastores"], data["workload"]["jobs"]
    data["workload"]["requests"][0]["steps"].pop()
    data["deployments"]["api"] = {"replicas": 2, "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}}}
    inputs = inputs_from_scenario(_parse(data))
    assert inputs.worker is None and inputs.pool == PoolSettings()
    assert inputs.api.hpa is None and inputs.api.pdb is None and inputs.api.anti_affinity is None
    kinds = [key_of(o) for o in build_manifests(inputs)]
    assert "HorizontalPodAutoscaler/memstack-api-hpa" not in kinds and not [k for k in kinds if "worker" in k]


def test_scenario_with_multi_process_worker_is_refused():
    from memstack_capacity.errors import ScenarioError
    from memstack_capacity.outputs.manifests.files import inputs_from_scenario

    data = _upstream_scenario_data()
    data["deployments"]["worker"]["processes"] = 3
    with pytest.raises(ScenarioError, match=r"deployments\.worker\.processes"):
        inputs_from_scenario(_parse(data))


def test_hpa_model_is_dumped_with_given_keys_only():
    hpa_module = pytest.importorskip("memstack_capacity.scenario.hpa")
    from memstack_capacity.outputs.manifests.scenario import hpa_spec

    assert hpa_spec(hpa_module.HorizontalPodAutoscalerSpec.model_validate({"maxReplicas": 5})) == {"maxReplicas": 5}
    given = dict(ManifestInputs.upstream().api.hpa)
    model = hpa_module.HorizontalPodAutoscalerSpec.model_validate(given)
    assert hpa_spec(model) == given
    # ...while the simulation still acts on the defaulted behaviour (scaleDown selectPolicy Max).
    assert model.behavior.scaleDown.selectPolicy == "Max"
    one_side = {"maxReplicas": 5, "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}}
    model = hpa_module.HorizontalPodAutoscalerSpec.model_validate(one_side)
    assert hpa_spec(model) == one_side
    assert model.behavior.scaleDown.policies[0].value == 100 and model.behavior.scaleUp.selectPolicy == "Max"


@pytest.mark.parametrize("readme", [FACTS_PATH.parent / "README.md", SCHEMAS / "README.md"])
def test_reference_data_is_the_upstream_bytes(readme):
    """The vendored facts and CRDs are the files their README names, byte for byte (sha256)."""
    import hashlib

    listed = dict(re.findall(r"\| `([^`]+)` \| `([0-9a-f]{64})` \|", readme.read_text(encoding="utf-8")))
    assert listed and all((readme.parent / name).is_file() for name in listed)
    assert {name: hashlib.sha256((readme.parent / name).read_bytes()).hexdigest() for name in listed} == listed
