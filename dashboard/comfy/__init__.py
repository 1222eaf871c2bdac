"""Everything that knows ComfyUI: the backend protocol and its implementations (in process, remote,
none), its model folders and extra_model_paths.yaml, and the ComfyUI this process may run in."""
