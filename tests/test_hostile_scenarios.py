"""Hostile scenario input through the CLI: every case is exit 2 with a message naming the file, the
field and the problem; never a traceback, a hang, runaway memory or a simulation. Each case runs under a deadline
(CASE_TIMEOUT_S) and a cap on the address space it may add (CASE_MEMORY_BYTES).

The corpus is generated: tables of numeric fields (by the kind of number each holds) times tables
of hostile values for that kind, plus YAML-level attacks (nesting, aliases, duplicate keys, size),
event references, config changes and ``--set`` overrides. A hypothesis property then mutates a
valid scenario at random and asks only for exit 0 or 2 in bounded time.
"""

from __future__ import annotations

import contextlib
import copy
import math
import resource
import signal
import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memstack_capacity.cli import main
from memstack_capacity.scenario import safe_yaml
from memstack_capacity.scenario.overrides import split_path

#: Address space one case may add to the process (bytes) before it counts as runaway memory.
CASE_MEMORY_BYTES = 1 << 30
#: Seconds one case may take before it counts as a hang.
CASE_TIMEOUT_S = 10

BASE = {
    "name": "hostile",
    "duration": "2m",
    "warmup": "10s",
    "workload": {
        "users": {"profile": [{"at": "0s", "users": 5}], "think_time": {"dist": "exponential", "mean": "1s"},
                  "retry": {"attempts": 2, "backoff": "1s", "multiplier": 2}},
        "timeout": "30s",
        "requests": [
            {"name": "read", "weight": 0.8, "memory": "1Mi", "steps": [
                {"cpu": {"dist": "lognormal", "mean": "5ms", "cv": 0.8}},
                {"call": "pg", "time": {"dist": "gamma", "mean": "1ms", "cv": 0.5}, "repeat": 2},
                {"call": "cache", "key_space": 1000, "key_alpha": 0.9,
                 "miss": [{"call": "pg", "time": "2ms"}]},
                {"external": "llm"},
            ]},
            {"name": "write", "weight": 0.2, "steps": [{"cpu": "3ms"}, {"enqueue": "index"}]},
        ],
        "jobs": [{"name": "index", "steps": [{"cpu": "10ms"}],
                  "retry": {"maximum_attempts": 3, "backoff_coefficient": 2}}],
    },
    "deployments": {
        "api": {"replicas": 2, "concurrency": 50,
                "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
                "readinessProbe": {"periodSeconds": 5},
                "hpa": {"maxReplicas": 4, "metrics": [{"type": "Resource", "resource": {
                    "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
                    "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 15}]}}}},
        "worker": {"replicas": 1, "consumes": ["index"],
                   "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}},
    },
    "datastores": {
        "pg": {"kind": "postgresql", "cores": 2, "pool": {"pool_size": 5}},
        "cache": {"kind": "redis", "maxmemory": "64Mi"},
        "llm": {"kind": "external", "latency": {"dist": "lognormal", "mean": "200ms", "cv": 0.5},
                "rate_limit": "600/min"},
    },
    "cluster": {"nodes": 3, "node": {"cpu": 4, "memory": "16Gi"}},
    "events": [
        {"at": "30s", "traffic_spike": {"factor": 2, "duration": "20s"}},
        {"at": "40s", "datastore_slowdown": {"datastore": "pg", "factor": 3, "duration": "10s"}},
        {"at": "50s", "pod_kill": {"deployment": "api"}},
        {"at": "60s", "config_change": {"set": {"deployments.api.hpa.maxReplicas": 5}}},
        {"at": "70s", "cache_flush": "cache"},
    ],
    "targets": {"error_rate": {"max": 0.01}, "latency_p99": {"max": "1s"}},
}

# ---- the tables --------------------------------------------------------------------------------------
#: Numeric fields of the base scenario by the kind of number they hold.
FIELDS = {
    "count": ["deployments.api.replicas", "deployments.api.concurrency", "deployments.api.hpa.maxReplicas",
              "workload.users.profile[0].users", "datastores.pg.cores", "datastores.pg.pool.pool_size",
              "workload.requests[0].steps[1].repeat", "workload.requests[0].steps[2].key_space",
              "workload.users.retry.attempts", "cluster.nodes", "datastores.llm.concurrency",
              "deployments.api.hpa.metrics[0].resource.target.averageUtilization",
              "deployments.api.readinessProbe.periodSeconds",
              "deployments.api.hpa.behavior.scaleUp.policies[0].value"],
    "number": ["workload.requests[0].weight", "targets.error_rate.max", "workload.requests[0].steps[2].key_alpha"],
    "duration": ["duration", "workload.timeout", "workload.users.retry.backoff", "events[0].traffic_spike.duration",
                 "workload.requests[0].steps[0].cpu.mean"],
    "memory": ["deployments.api.resources.requests.memory", "workload.requests[0].memory", "cluster.node.memory",
               "datastores.cache.maxmemory"],
    "cpu": ["deployments.api.resources.requests.cpu", "cluster.node.cpu"],
    "cv": ["workload.requests[0].steps[0].cpu.cv", "workload.requests[0].steps[1].time.cv",
           "datastores.llm.latency.cv"],
    "factor": ["events[0].traffic_spike.factor", "events[1].datastore_slowdown.factor",
               "workload.users.retry.multiplier", "workload.jobs[0].retry.backoff_coefficient"],
    "rate": ["datastores.llm.rate_limit"],
}
NAN, INF = float("nan"), float("inf")
#: Hostile values for each kind of number, with a fragment of the expected message.
VALUES = {
    "count": [(True, "whole number"), (2.5, "whole number"), (1e30, "whole number"), (10**30, "must be at most"),
              (-3, "must be "), (NAN, "whole number"), (INF, "whole number"), ("many", "whole number")],
    "number": [(NAN, "finite"), (INF, "finite"), (-INF, "finite"), (1e300, "must be at most"), (True, "a number"),
               ("0.5", "a number"), (-1, "must be at least")],
    "duration": [(INF, "not a duration"), (NAN, "not a duration"), (1e20, "at most 100 years"),
                 ("1e20", "at most 100 years"), (-5, "must not be negative"), (True, "not a duration"),
                 ("soon", "not a duration")],
    "memory": [("99999999999999999999Ei", "at most 1Pi"), (INF, "not a memory"), (-1, "must not be negative"),
               ("12XB", "unknown suffix"), (2**70, "at most 1Pi")],
    "cpu": [(INF, "not a CPU"), (1e30, "at most"), (0, "greater than zero"), (NAN, "not a CPU"), ("2x", "unknown")],
    "cv": [(INF, "finite"), (1e300, "at most 100"), (-1, "must not be negative"), (NAN, "finite"), (True, "a number")],
    "factor": [(INF, "finite"), (1e300, "at most"), (0, "must be"), (-2, "must be"), (NAN, "finite")],
    "rate": [(INF, "finite"), (0, "greater than 0"), (-5, "greater than 0"), (NAN, "finite"), ("fast", "rate")],
}
#: Further values of whole blocks that make no sense, by field.
BLOCKS = [
    ("workload.requests[0].steps[0].cpu", {"dist": "lognormal", "mean": 0, "cv": 0.5}, "mean must be greater"),
    ("workload.requests[0].steps[1].time", {"dist": "gamma", "mean": "0s", "cv": 1}, "mean must be greater than zero"),
    ("workload.requests[0].steps[0].cpu", {"dist": "lognormal", "mean": "1ms", "cv": INF}, "finite"),
    ("workload.users.retry", {"attempts": 10000, "multiplier": 1000}, "would exceed 100 years"),
    ("workload.jobs[0].retry", {"maximum_attempts": 5000, "backoff_coefficient": 10}, "would exceed 100 years"),
    ("targets.throughput_rps", {"min": NAN}, "finite"),
    ("deployments.api.livenessProbe", {"periodSeconds": 10**20}, "must be at most"),
    ("deployments.api.strategy", {"rollingUpdate": {"maxSurge": 10**30}}, "must be at most"),
    ("workload.arrivals", {"profile": [{"at": 0, "rps": INF}], "cv": INF}, "finite"),
    ("workload.requests[0].steps[0]", {"cpu": "1ms", "repeat": 10**6}, "must be at most 10000"),
]


def _zero_time(data):
    """think_time 0 needs requests that take time: make every step take none."""
    data["workload"]["users"]["think_time"] = "0s"
    for request in data["workload"]["requests"]:
        request["steps"] = [{"cpu": "0s"}]


def _set(data, path: str, value) -> None:
    """Put ``value`` at a dotted path (``a.b[0].c``) in nested data, replacing or adding the last key."""
    parts = split_path(path)
    node = data
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def _numeric_cases():
    for kind, paths in FIELDS.items():
        for path in paths:
            for value, fragment in VALUES[kind]:
                yield pytest.param(path, value, fragment, id=f"{path}={value!r}"[:80])


def _event_cases():
    """Events that name nothing, at each event kind that names something."""
    names = [("pod_kill", {"deployment": "web"}, "events[5].pod_kill.deployment", "names no deployment"),
             ("rolling_update", "web", "events[5].rolling_update.deployment", "names no deployment"),
             ("cache_flush", "pg", "events[5].cache_flush", "is not a Redis datastore"),
             ("cache_flush", "nope", "events[5].cache_flush", "names no datastore"),
             ("datastore_outage", {"datastore": "db", "duration": "5s"}, "events[5].datastore_outage.datastore",
              "names no datastore"),
             ("datastore_slowdown", {"datastore": "db", "factor": 2, "duration": "5s"},
              "events[5].datastore_slowdown.datastore", "names no datastore"),
             ("drain", "node-9", "events[5].drain", "names no node"),
             ("node_failure", {"nodes": ["node-3"]}, "events[5].node_failure", "names no node"),
             ("traffic_spike", {"factor": INF, "duration": "5s"}, "events[5].traffic_spike.factor", "finite"),
             ("config_change", {"set": {"deployments.api.replicaz": 3}},
              "events[5].config_change.set.deployments.api.replicaz", "did you mean `replicas`"),
             ("config_change", {"set": {"workload.timeout": "5s"}}, "events[5].config_change.set.workload.timeout",
              "cannot change on a running system"),
             ("config_change", {"set": {"deployments.api.replicas": -1}},
              "events[5].config_change.set.deployments.api.replicas", "must be at least 0"),
             ("config_change", {"set": {"deployments.api.concurrency": INF}},
              "events[5].config_change.set.deployments.api.concurrency", "whole number"),
             ("config_change", {"set": {"deployments.api.hpa.maxReplicas": True}},
              "events[5].config_change.set.deployments.api.hpa.maxReplicas", "whole number")]
    for kind, payload, field, fragment in names:
        yield pytest.param(kind, payload, field, fragment, id=f"{kind}:{field}:{fragment}"[:80])


def _nested(depth: int, style: str) -> str:
    if style == "flow":
        return "name: deep\nx: " + "[" * depth + "]" * depth + "\n"
    if style == "mapping":
        return "name: deep\nx: " + "{a: " * depth + "1" + "}" * depth + "\n"
    return "name: deep\n" + "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "v: 1\n"


def _bomb(levels: int, width: int, where: str) -> str:
    """Aliases ``width`` wide, ``levels`` deep: at the top level, or under a config_change value."""
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    text = "\n".join(lines) + "\n"
    if where == "top":
        return yaml.safe_dump(BASE, sort_keys=False) + text
    last = f"*a{levels - 1}"
    return text + f"events: [{{at: 1s, config_change: {{set: {{deployments.api.replicas: {last}}}}}}}]\n"


def _yaml_cases():
    for depth in (101, 150, 1000, 5000):
        for style in ("flow", "mapping", "block"):
            # a block nested 5000 deep is over MAX_BYTES in indentation alone
            yield pytest.param(_nested(depth, style), "MAX_", id=f"nested-{style}-{depth}")
    for levels, width in ((6, 9), (9, 10), (30, 2), (20, 3)):
        for where in ("top", "nested"):
            yield pytest.param(_bomb(levels, width, where), "MAX_", id=f"alias-bomb-{levels}x{width}-{where}")
    for text in ("- &a {parallel: [*a]}\n", "a: &a [*a]\n", "a: &a {b: *a}\n", "x: &a [1, [2, *a]]\n"):
        yield pytest.param(text, "recursive alias", id=f"recursive-{text.strip()}")
    chain = "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 200))
    yield pytest.param(chain, "MAX_DEPTH", id="alias-chain-200")
    base = yaml.safe_dump(BASE, sort_keys=False)
    for key in ("name", "duration", "replicas", "cores", "timeout", "maxmemory", "nodes", "concurrency"):
        line = next(line for line in base.splitlines() if line.strip().startswith(key + ":"))
        yield pytest.param(base.replace(line + "\n", line + "\n" + line + "\n", 1), "given twice",
                           id=f"duplicate-{key}")
    yield pytest.param("x: 1\n" * 2 + "name: a\n", "given twice", id="duplicate-top")
    many = "".join(f"k{i}: {i}\n" for i in range(safe_yaml.MAX_KEYS + 1))
    yield pytest.param(many, "MAX_KEYS", id="too-many-keys")
    yield pytest.param("x: '" + "a" * (safe_yaml.MAX_BYTES + 10) + "'\n", "MAX_BYTES", id="too-large")


def _set_cases():
    """--set values go through the same loader and the same models (through `show`)."""
    cases = [("deployments.api.replicas=.inf", "whole number"), ("deployments.api.replicas=true", "whole number"),
             ("workload.requests[0].weight=.nan", "finite"), ("duration=1e20", "at most 100 years"),
             ("datastores.llm.rate_limit=0", "greater than 0"), ("cluster.node.memory=99999999999999999999Ei", "1Pi"),
             ("workload.requests[0].steps[0].cpu.cv=1.0e+300", "at most 100"),
             ("workload.requests[0].steps[0].cpu.cv=1e300", "must be a number"),
             ("deployments.api.replicas=&a [*a]", "recursive alias"),
             ("deployments.api.replicas={a: 1, a: 2}", "given twice"),
             ("deployments.api.replicas=" + "[" * 200 + "]" * 200, "MAX_DEPTH")]
    for arg, fragment in cases:
        yield pytest.param(arg, fragment, id=arg[:60])


# ---- running them ------------------------------------------------------------------------------------
@contextlib.contextmanager
def _deadline(seconds: float):
    """Fail a case that takes longer than ``seconds`` (a hang), instead of waiting for it."""
    def expire(signum, frame):
        raise TimeoutError(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def _memory_cap(extra: int):
    """Let a case grow the address space by at most `extra` bytes (RLIMIT_AS; a MemoryError beyond)."""
    with open("/proc/self/statm") as f:
        in_use = int(f.read().split()[0]) * resource.getpagesize()
    old = resource.getrlimit(resource.RLIMIT_AS)
    cap = in_use + extra if old[1] == resource.RLIM_INFINITY else min(in_use + extra, old[1])
    resource.setrlimit(resource.RLIMIT_AS, (cap, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    with _deadline(CASE_TIMEOUT_S), _memory_cap(CASE_MEMORY_BYTES):
        code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def _write(tmp_path, data) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return str(path)


def _expect_rejected(capsys, path: str, field: str, fragment: str) -> str:
    code, out, err = _cli(capsys, "validate", path)
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.startswith(f"{path}: {field}")]
    assert lines and any(fragment in line for line in lines), err
    return err


def test_the_base_scenario_is_valid(capsys, tmp_path):
    code, out, err = _cli(capsys, "validate", _write(tmp_path, BASE))
    assert code == 0, err


@pytest.mark.parametrize(("path", "value", "fragment"), list(_numeric_cases()))
def test_a_hostile_number_is_rejected_naming_field_and_value(capsys, tmp_path, path, value, fragment):
    data = copy.deepcopy(BASE)
    _set(data, path, value)
    err = _expect_rejected(capsys, _write(tmp_path, data), path, fragment)
    shown = "nan" if isinstance(value, float) and math.isnan(value) else repr(value)[:12].rstrip("'")
    assert shown.lower() in err.lower() or "got a" in err


@pytest.mark.parametrize(("path", "value", "fragment"), [pytest.param(*b, id=b[0] + "=" + repr(b[1])[:40])
                                                         for b in BLOCKS])
def test_a_meaningless_block_is_rejected(capsys, tmp_path, path, value, fragment):
    data = copy.deepcopy(BASE)
    _set(data, path, value)
    _expect_rejected(capsys, _write(tmp_path, data), path, fragment)


def test_zero_think_time_with_requests_that_take_no_time_is_rejected(capsys, tmp_path):
    data = copy.deepcopy(BASE)
    _zero_time(data)
    _expect_rejected(capsys, _write(tmp_path, data), "workload.requests[0]", "never advance")


@pytest.mark.parametrize(("kind", "payload", "field", "fragment"), list(_event_cases()))
def test_an_event_that_names_nothing_or_changes_what_it_cannot_is_rejected(capsys, tmp_path, kind, payload,
                                                                             field, fragment):
    data = copy.deepcopy(BASE)
    data["events"].append({"at": "80s", kind: payload})
    _expect_rejected(capsys, _write(tmp_path, data), field, fragment)


@pytest.mark.parametrize(("text", "fragment"), list(_yaml_cases()))
def test_a_hostile_document_is_refused_while_loading(capsys, tmp_path, text, fragment):
    path = _write(tmp_path, text)
    started = time.perf_counter()
    code, out, err = _cli(capsys, "validate", path)
    assert code == 2 and err.startswith(f"{path}: (top level): not accepted: ") and fragment in err, err
    assert time.perf_counter() - started < CASE_TIMEOUT_S


@pytest.mark.parametrize("command", ["validate", "show"])
def test_recursion_and_depth_are_exit_2_in_every_command(capsys, tmp_path, command):
    for text in ("- &a {parallel: [*a]}\n", _nested(1000, "flow")):
        code, out, err = _cli(capsys, command, _write(tmp_path, text))
        assert code == 2 and "not accepted" in err


@pytest.mark.parametrize(("argument", "fragment"), list(_set_cases()))
def test_a_hostile_set_value_is_rejected(capsys, tmp_path, argument, fragment):
    code, out, err = _cli(capsys, "show", _write(tmp_path, BASE), "--set", argument)
    assert code == 2 and fragment in err, err


@pytest.mark.parametrize("case", ["cv-inf", "mean-0", "rate-limit-0", "alias-bomb", "zero-time"])
def test_run_simulates_nothing(capsys, tmp_path, case):
    data = copy.deepcopy(BASE)
    edits = {"cv-inf": lambda d: _set(d, "workload.requests[0].steps[0].cpu.cv", INF),
             "mean-0": lambda d: _set(d, "workload.requests[0].steps[0].cpu.mean", 0),
             "rate-limit-0": lambda d: _set(d, "datastores.llm.rate_limit", 0),
             "zero-time": _zero_time}
    path = _write(tmp_path, _bomb(9, 10, "nested") if case == "alias-bomb" else (edits[case](data) or data))
    out_dir = tmp_path / "out"
    code, out, err = _cli(capsys, "run", path, "--out", str(out_dir))
    assert code == 2 and not out_dir.exists() and "error:" in err


def test_the_corpus_is_large():
    sizes = [len(list(_numeric_cases())), len(BLOCKS) + 1, len(list(_event_cases())), len(list(_yaml_cases())),
             len(list(_set_cases()))]
    assert sum(sizes) >= 150, sizes


# ---- a property: any mutation of a valid scenario is exit 0 or 2, quickly ---------------------------------
def _paths(node, prefix=()):
    """Every path (a tuple of keys and indices) into nested data, parents before children."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


ALL_PATHS = [p for p in _paths(BASE) if p]
HOSTILE = st.sampled_from(["text", NAN, INF, -INF, -1, -1e300, 1e300, 10**30, True, None, [], {}, 0, 0.5, "0s"])


def _mutate(data, path, value):
    node = data
    for part in path[:-1]:
        node = node[part]
    if value == "<delete>":
        del node[path[-1]]
    else:
        node[path[-1]] = value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.sampled_from(ALL_PATHS), st.one_of(HOSTILE, st.just("<delete>"))),
                      min_size=1, max_size=3),
       duplicate=st.integers(min_value=-1, max_value=200))
def test_any_mutation_is_exit_0_or_2_in_bounded_time(capsys, tmp_path, edits, duplicate):
    data = copy.deepcopy(BASE)
    for path, value in edits:
        with contextlib.suppress(KeyError, IndexError, TypeError):
            _mutate(data, path, value)
    text = yaml.safe_dump(data, sort_keys=False)
    lines = text.splitlines(keepends=True)
    if duplicate >= 0 and lines:
        line = lines[duplicate % len(lines)]
        lines.insert(duplicate % len(lines), line)  # a key (or list item) written twice
    started = time.perf_counter()
    code, out, err = _cli(capsys, "validate", _write(tmp_path, "".join(lines)))
    assert code in (0, 2), err
    assert time.perf_counter() - started < CASE_TIMEOUT_S
