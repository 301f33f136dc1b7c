"""Training tools that ship with the pack (run as modules from the pack's folder; ComfyUI never imports them).

    python -m training.exvideo_posttune --help     ExVideo post-tuning: train your own long-video extension
"""
