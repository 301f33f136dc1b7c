"""Developer tooling for ZeroVideo: the test host, tiny models, and the workflow runner (not shipped to the
Comfy Registry, except the ExVideo post-tuning CLI and comfy_env, which it imports)."""
