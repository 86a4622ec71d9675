"""The harness the tests and the benchmarks share: talking to a running stack (its services,
the fake Gemini, its database), uploading documents, reading SSE streams, signing readers up,
starting extra replicas, polling instead of sleeping, and measuring CPU per process group."""
