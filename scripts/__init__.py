"""Developer tooling for ZeroVideo: the test host, tiny models, and the workflow runner (not shipped)."""
