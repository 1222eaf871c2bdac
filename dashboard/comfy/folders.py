"""ComfyUI's model folder types: names, display names, extensions, legacy aliases."""

from __future__ import annotations

from pathlib import Path

#: ComfyUI's own model extensions (folder_paths.supported_pt_extensions), plus GGUF.
MODEL_EXTENSIONS = frozenset({".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft", ".gguf"})

#: Folder type -> display name, in ComfyUI's order.
FOLDER_TYPES: dict[str, str] = {
    "checkpoints": "Checkpoints",
    "configs": "Configs",
    "loras": "LoRAs",
    "vae": "VAE",
    "text_encoders": "Text Encoders",
    "diffusion_models": "Diffusion Models",
    "clip_vision": "CLIP Vision",
    "style_models": "Style Models",
    "embeddings": "Embeddings",
    "diffusers": "Diffusers",
    "vae_approx": "VAE Approx",
    "controlnet": "ControlNet",
    "gligen": "GLIGEN",
    "upscale_models": "Upscale Models",
    "latent_upscale_models": "Latent Upscale Models",
    "hypernetworks": "Hypernetworks",
    "photomaker": "PhotoMaker",
    "classifiers": "Classifiers",
    "model_patches": "Model Patches",
    "audio_encoders": "Audio Encoders",
}

#: Old folder names ComfyUI still reads, and the type they belong to.
LEGACY_FOLDERS = {"unet": "diffusion_models", "clip": "text_encoders", "t2i_adapter": "controlnet"}


def canonical_type(name: str) -> str | None:
    """The folder type for a folder name (legacy names mapped), or None if unknown."""
    if name in FOLDER_TYPES:
        return name
    return LEGACY_FOLDERS.get(name)


def ensure_model_folders(models_dir: Path) -> None:
    """Create the models dir and every standard folder type under it (blocking; call at start)."""
    for name in FOLDER_TYPES:
        (models_dir / name).mkdir(parents=True, exist_ok=True)


def standalone_roots(models_dir: Path) -> dict[str, list[Path]]:
    """Folder type -> folders under one models dir, legacy folder names included, as ComfyUI lays them out."""
    roots = {name: [models_dir / name] for name in FOLDER_TYPES}
    for legacy, name in LEGACY_FOLDERS.items():
        roots[name].append(models_dir / legacy)
    return roots
