"""Engine extension: the worker tier (``workload.jobs`` and ``deployments.*.consumes``).

Compiles the job programs, builds one Temporal task queue per set of deployments that
consume a job (normally the single ``worker`` deployment), registers the ``enqueue``
step handler, the ``jobs`` sampler and the ``jobs`` summary finisher. See
:mod:`memstack_capacity.components.workers` for the semantics.
"""

from __future__ import annotations

from memstack_capacity.components.flows import ENQUEUE, compile_steps
from memstack_capacity.components.workers import WorkerTier
from memstack_capacity.engine.des.build import EXTENSIONS


def workers_extension(model, streams) -> None:
    scenario = model.scenario
    jobs = scenario.workload.jobs
    if not jobs:
        return
    programs = [compile_steps(j.steps, streams, f"jobs/{j.name}") for j in jobs]
    model.extensions["job_programs"] = programs
    tier = WorkerTier(model.env, jobs, programs, model.recorder, warmup=scenario.warmup)

    consumers: dict[str, tuple] = {}
    for dep_name, dep in scenario.deployments.items():
        for job in dep.consumes:
            consumers[job] = consumers.get(job, ()) + (dep_name,)
    groups: dict[tuple, list] = {}
    for job in jobs:  # validation guarantees every job has a consumer
        groups.setdefault(consumers.get(job.name, ()), []).append(job.name)
    for deps, names in groups.items():
        if not deps:
            continue
        tier.add_queue("+".join(deps), [model.runtimes[d] for d in deps], names)

    model.executor.handlers[ENQUEUE] = tier.enqueue_step
    model.extensions["jobs"] = tier
    model.monitor.extra.append(tier.sample)
    model.extensions.setdefault("finishers", {})["jobs"] = tier.finish


if workers_extension not in EXTENSIONS:
    EXTENSIONS.append(workers_extension)
