"""Shared code of the scenario packs in examples/: the numpy CNN (``cnn``), the pack's data and training steps
(``pack``) and the measurement that writes a pack's ``results.json`` (``measure``)."""
