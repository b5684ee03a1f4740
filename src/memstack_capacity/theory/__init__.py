"""Closed forms of queueing theory that the simulator is checked against.

``queueing`` holds the open and single-station results (M/M/c, Erlang B and C, processor
sharing, Che's LRU approximation); ``closed`` the closed networks (machine repairman, MVA).
Pure functions of numbers: this package imports nothing else of the project.
"""
