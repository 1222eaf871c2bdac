"""ComfyUI custom node entry point: mounts the dashboard at /dashboard and adds the sidebar tab."""

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
WEB_DIRECTORY = "./web/comfyui"

try:
    from .dashboard.hosting import mount_in_comfyui

    mount_in_comfyui()
except Exception as exc:  # never let the dashboard take ComfyUI down
    import logging

    logging.getLogger("dashboard").error("ComfyUI Dashboard could not be loaded: %s", exc)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
