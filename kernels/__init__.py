"""Pure tensor math for ZeroVideo: torch + einops + kornia only, never a ComfyUI import."""
