"""Everything that knows ComfyUI: the backend protocol, its implementations, model folders."""
