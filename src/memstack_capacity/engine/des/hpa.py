"""Registers metrics-server and one HPA controller per autoscaled deployment with the engine."""

from __future__ import annotations

from memstack_capacity.components.hpa.calc import ControllerConfig
from memstack_capacity.components.hpa.controller import HPAController
from memstack_capacity.components.metrics import MetricsServer
from memstack_capacity.engine.des import build


def hpa_extension(model, streams) -> None:
    scenario = model.scenario
    autoscaled = {n: d for n, d in scenario.deployments.items() if d.hpa is not None}
    if not autoscaled:
        return
    config = ControllerConfig(sync_period_s=scenario.cluster.hpa_sync_period)
    server = MetricsServer(model.env, scenario.cluster.metrics_resolution, model.runtimes)
    controllers = {}
    for name, dep in autoscaled.items():
        external = {}
        jobs = model.extensions.get("jobs")
        if jobs is not None:
            external["queue_length"] = lambda name=name, jobs=jobs: [jobs.queue_length(name)]
        controllers[name] = HPAController(
            model.env, name, model.runtimes[name], dep.hpa, server, config, model.recorder, external
        )
    model.extensions["hpa"] = controllers
    model.extensions["metrics_server"] = server

    def start():
        model.env.process(server.run())
        for controller in controllers.values():
            model.env.process(controller.run())

    model.extensions.setdefault("starters", []).append(start)


build.EXTENSIONS.append(hpa_extension)
