"""Looking inside a run: per-kernel profile (:mod:`.profile`) and per-layer accuracy comparison (:mod:`.compare`)."""
