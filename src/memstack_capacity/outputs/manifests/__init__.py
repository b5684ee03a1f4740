"""Kubernetes manifests for the configuration a scenario simulates, as data, then as YAML.

``inputs`` (what the manifests need, typed), ``scenario`` (those inputs from a scenario),
``workloads`` (Deployments, Services, HPAs, PDBs), ``platform`` (namespace, ConfigMap,
Secret, Ingress, monitoring objects) and ``files`` (building the set and writing it in
upstream order). It imports the scenario layer and ``errors`` only; never the engine, the
results or the rest of outputs.
"""
