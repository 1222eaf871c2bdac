"""ComfyUI's workflow formats: checking the API format, and the model files a workflow loads.

- API format (what `POST /prompt` takes): node id -> `{class_type, inputs}`; shipped and user
  workflows are in it, and every submission is checked against it;
- UI format (the editor's `nodes` and `links`, as it saves them; ComfyUI's official templates): the
  model files such a workflow loads are the loader widgets' values (`LOADER_WIDGETS`) and the
  `properties.models` (`{name, url, directory}`) its nodes declare, subgraphs included; a declared
  model counts when some widget of the workflow selects it, and lends its URL to the loader's file.
"""

from __future__ import annotations

import os
from typing import Any

from ..comfy.folders import MODEL_EXTENSIONS, canonical_type
from ..errors import InvalidWorkflow
from .templates import template_models, ui_nodes

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

#: UI format: the widgets of a loader node that name a model file, by position, and their folder type.
_CLIP = "text_encoders"
LOADER_WIDGETS: dict[str, tuple[str | None, ...]] = {
    "CheckpointLoaderSimple": ("checkpoints",), "CheckpointLoader": (None, "checkpoints"),
    "ImageOnlyCheckpointLoader": ("checkpoints",), "unCLIPCheckpointLoader": ("checkpoints",),
    "UNETLoader": ("diffusion_models",), "UnetLoaderGGUF": ("diffusion_models",), "VAELoader": ("vae",),
    "CLIPLoader": (_CLIP,), "DualCLIPLoader": (_CLIP, _CLIP), "TripleCLIPLoader": (_CLIP, _CLIP, _CLIP),
    "QuadrupleCLIPLoader": (_CLIP, _CLIP, _CLIP, _CLIP), "CLIPVisionLoader": ("clip_vision",),
    "LoraLoader": ("loras",), "LoraLoaderModelOnly": ("loras",), "ControlNetLoader": ("controlnet",),
    "DiffControlNetLoader": ("controlnet",), "StyleModelLoader": ("style_models",),
    "UpscaleModelLoader": ("upscale_models",), "HypernetworkLoader": ("hypernetworks",),
    "GLIGENLoader": ("gligen",), "PhotoMakerLoader": ("photomaker",), "ModelPatchLoader": ("model_patches",),
    "AudioEncoderLoader": ("audio_encoders",), "LatentUpscaleModelLoader": ("latent_upscale_models",),
}


def workflow_format(workflow: Any) -> str:
    """`ui` for the editor's format (a `nodes` list), `api` for an API-format workflow; INVALID_WORKFLOW otherwise."""
    if isinstance(workflow, dict) and isinstance(workflow.get("nodes"), list):
        return "ui"
    check_api_workflow(workflow)
    return "api"


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
    """The model files a workflow loads: `{type, name, path, nodes, url}`, one per file (`url` is the
    one the workflow declares for it, else None)."""
    found: dict[str, dict[str, Any]] = {}

    def add(folder: str | None, name: Any, node: Any, url: str | None = None) -> None:
        if folder is None or not isinstance(name, str) or os.path.splitext(name)[1].lower() not in MODEL_EXTENSIONS:
            return
        name = name.replace("\\", "/")
        entry = found.setdefault(f"{folder}/{name}", {"type": folder, "name": name, "path": f"{folder}/{name}",
                                                       "nodes": [], "url": None})
        if node is not None and str(node) not in entry["nodes"]:
            entry["nodes"].append(str(node))
        entry["url"] = entry["url"] or url

    if fmt == "ui":
        nodes = ui_nodes(workflow)
        selected = {v for node in nodes for v in _widget_values(node) if isinstance(v, str)}
        declared = {(canonical_type(m["directory"]), m["name"].replace("\\", "/")): m["url"]
                    for m in template_models(workflow)}
        for node in nodes:
            for folder, value in zip(LOADER_WIDGETS.get(node.get("type"), ()), _widget_values(node), strict=False):
                if isinstance(value, str):
                    add(folder, value, node.get("id"), declared.get((folder, value.replace("\\", "/"))))
            for model in template_models({"nodes": [node]}):
                if model["name"] in selected:
                    add(canonical_type(model["directory"]), model["name"], node.get("id"), model["url"])
    else:
        for node_id, node in workflow.items():
            if not isinstance(node, dict) or not isinstance(node.get("inputs"), dict):
                continue
            table = {**LOADER_INPUTS, **CLASS_INPUTS.get(node.get("class_type"), {})}
            for key, value in node["inputs"].items():
                add(table.get(key), value, node_id)
    return list(found.values())


def _widget_values(node: dict[str, Any]) -> list[Any]:
    values = node.get("widgets_values")
    return values if isinstance(values, list) else []
