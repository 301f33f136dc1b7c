"""Developer tooling for ZeroVideo: the test host, tiny models, and the workflow runner (not shipped to the
Comfy Registry, except exvideo_posttune.py: the post-tuning trainer's earlier name, which forwards to
training/exvideo_posttune.py)."""
