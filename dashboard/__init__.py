"""ComfyUI Dashboard: the control room for a ComfyUI machine."""

__version__ = "1.0.0"
