"""Hardware descriptions: boards from ``targets/*.yaml`` and the emulated boards that run artifacts."""
