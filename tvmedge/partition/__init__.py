"""Partitioning a model over a board's compute units: op graph, cost model, partitioners, plan.

The library entry point is :func:`tvmedge.partition.report.partition_model` (the twin of
``tvmedge partition``); see ``tvmedge/partition/README.md``.
"""
