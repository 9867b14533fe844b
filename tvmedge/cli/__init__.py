"""The ``tvmedge`` command line: one file per verb, each a thin layer over :mod:`tvmedge.api`."""
