"""ComfyUI's workflow formats: checking the API format, and the model files a workflow loads.

- API format (what `POST /prompt` takes): node id -> `{class_type, inputs}`; shipped and user
  workflows are in it, and every submission is checked against it;
- UI format (the editor's `nodes` and `links`): ComfyUI's official templates; the model files such a
  workflow loads are the `models` its nodes declare.
"""

from __future__ import annotations

import os
from typing import Any

from ..comfy.folders import MODEL_EXTENSIONS, canonical_type
from ..errors import InvalidWorkflow
from .templates import template_models

#: Loader inputs that name a model file, and the model folder type they read from.
LOADER_INPUTS = {
    "ckpt_name": "checkpoints", "lora_name": "loras", "vae_name": "vae", "unet_name": "diffusion_models",
    "clip_name": "text_encoders", "clip_name1": "text_encoders", "clip_name2": "text_encoders",
    "clip_name3": "text_encoders", "clip_name4": "text_encoders", "control_net_name": "controlnet",
    "style_model_name": "style_models", "gligen_name": "gligen", "hypernetwork_name": "hypernetworks",
    "photomaker_model_name": "photomaker", "audio_encoder_name": "audio_encoders",
}
#: Where a node type reads an input from another folder than LOADER_INPUTS says.
CLASS_INPUTS = {
    "CLIPVisionLoader": {"clip_name": "clip_vision"},
    "UpscaleModelLoader": {"model_name": "upscale_models"},
    "ModelPatchLoader": {"name": "model_patches"},
}


def check_api_workflow(workflow: Any) -> dict[str, Any]:
    """`workflow` if it is an API-format workflow (node id -> {class_type, inputs}), else INVALID_WORKFLOW.

    Plain checks, no schema library: this runs on every submission.
    """
    if isinstance(workflow, dict) and isinstance(workflow.get("nodes"), list):
        raise InvalidWorkflow("This is a workflow in ComfyUI's UI format (nodes and links); "
                              "the API takes the API format: in ComfyUI use Workflow > Export (API)",
                              {"format": "ui"})
    if not isinstance(workflow, dict) or not workflow:
        raise _not_api_format(None, "expected a non-empty object of nodes")
    for node_id, node in workflow.items():
        if not isinstance(node, dict):
            raise _not_api_format(node_id, "a node must be an object")
        class_type = node.get("class_type")
        if not isinstance(class_type, str) or not class_type:
            raise _not_api_format(node_id, "class_type must be a non-empty string")
        if not isinstance(node.get("inputs"), dict):
            raise _not_api_format(node_id, "inputs must be an object")
    return workflow


def _not_api_format(node_id: str | None, reason: str) -> InvalidWorkflow:
    where = f"node {node_id}: " if node_id is not None else ""
    return InvalidWorkflow(f"A workflow is an object of nodes, each with a class_type and inputs: "
                           f"{where}{reason}", {"node": node_id, "reason": reason})


def required_models(workflow: dict[str, Any], fmt: str) -> list[dict[str, Any]]:
    """The model files a workflow loads: `{type, name, path, nodes}`, one per file."""
    found: dict[str, dict[str, Any]] = {}

    def add(folder: str | None, name: Any, node: str | None) -> None:
        if folder is None or not isinstance(name, str) or os.path.splitext(name)[1].lower() not in MODEL_EXTENSIONS:
            return
        name = name.replace("\\", "/")
        entry = found.setdefault(f"{folder}/{name}", {"type": folder, "name": name, "path": f"{folder}/{name}",
                                                       "nodes": []})
        if node is not None and node not in entry["nodes"]:
            entry["nodes"].append(node)

    if fmt == "ui":
        for model in template_models(workflow):
            add(canonical_type(model["directory"]), model["name"], None)
    else:
        for node_id, node in workflow.items():
            if not isinstance(node, dict) or not isinstance(node.get("inputs"), dict):
                continue
            table = {**LOADER_INPUTS, **CLASS_INPUTS.get(node.get("class_type"), {})}
            for key, value in node["inputs"].items():
                add(table.get(key), value, str(node_id))
    return list(found.values())
