"""Sample images written the way each generator writes its metadata (small images, real-looking metadata): the chunk
names, EXIF tags, JSON shapes and stealth-bit layout of AUTOMATIC1111, ComfyUI, Fooocus, InvokeAI 2.x/3+ and NovelAI."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

A1111_PROMPT = "masterpiece, a lighthouse at dusk, (dramatic lighting:1.2),\ntrending on artstation, <lora:ink:0.8>"
A1111 = (f"{A1111_PROMPT}\nNegative prompt: blurry, lowres\n"
         "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 1234, Size: 512x768, "
         'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: "ink: 5e3fa0b2c1d4", Version: v1.10.1')


def a1111_infotext(seed: int = 1234, prompt: str = A1111_PROMPT) -> str:
    return A1111.replace("Seed: 1234", f"Seed: {seed}").replace(A1111_PROMPT, prompt)


def pixels(size=(64, 64), seed: int = 0, mode: str = "RGB") -> Image.Image:
    """Noise: every sample's pixels differ (an import tells images apart by them)."""
    return Image.frombytes(mode, size, random.Random(seed).randbytes(size[0] * size[1] * len(mode)))


def png(path: Path, text: dict[str, str], image: Image.Image | None = None, seed: int = 0) -> Path:
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)  # tEXt, or iTXt where the text is not Latin-1 (as A1111 and ComfyUI save)
    (image or pixels(seed=seed)).save(path, pnginfo=info)
    return path


def a1111_png(path: Path, seed: int = 1234, prompt: str = A1111_PROMPT, noise: int | None = None) -> Path:
    return png(path, {"parameters": a1111_infotext(seed, prompt)}, seed=seed if noise is None else noise)


def a1111_jpeg(path: Path) -> Path:
    """A1111's JPEG: the infotext in EXIF UserComment, piexif's "UNICODE" header and UTF-16 big-endian."""
    exif = Image.Exif()
    exif[0x8769] = {0x9286: b"UNICODE\x00" + A1111.encode("utf-16-be")}
    pixels(seed=7).save(path, exif=exif.tobytes(), quality=90)
    return path


def stealth(image: Image.Image, text: str, compressed: bool = True) -> Image.Image:
    """The stealth-pnginfo extension's alpha mode: alpha set to 255, then signature, 32-bit bit count and the text
    (gzipped for ``stealth_pngcomp``) in the alpha's lowest bit, column by column."""
    data = gzip.compress(text.encode()) if compressed else text.encode()
    signature = b"stealth_pngcomp" if compressed else b"stealth_pnginfo"
    bits = np.unpackbits(np.frombuffer(signature + (len(data) * 8).to_bytes(4, "big") + data, np.uint8))
    rgba = np.array(image.convert("RGBA"))
    rgba[..., 3] = 255
    alpha = rgba[..., 3].T.copy().reshape(-1)  # column-major
    assert len(bits) <= alpha.size, "the image is too small for this text"
    alpha[: len(bits)] = (alpha[: len(bits)] & 0xFE) | bits
    rgba[..., 3] = alpha.reshape(image.width, image.height).T
    return Image.fromarray(rgba, "RGBA")


def a1111_stealth_png(path: Path) -> Path:
    """A1111 with stealth info and no text chunk (what survives a site that strips PNG text)."""
    stealth(pixels((96, 96), seed=3), A1111).save(path)
    return path


def comfy_graph() -> dict:
    """ComfyUI's default workflow as its API graph (the PNG's "prompt" chunk)."""
    return {
        "3": {"class_type": "KSampler", "inputs": {"seed": 156680208700286, "steps": 20, "cfg": 8.0, "sampler_name": "euler",
                                                   "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                                   "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "beautiful scenery nature glass bottle landscape, purple galaxy bottle",
                                                         "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    }


def comfy_hostile_graph(n: int) -> dict:
    """``n`` KSamplers on a conditioning chain ``n`` nodes long (the work of a parser that walks every sampler's chain
    grows with both)."""
    graph = {f"c{i}": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": [f"c{i + 1}", 0]}} for i in range(n)}
    graph[f"c{n}"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "deep"}}
    graph |= {f"s{i}": {"class_type": "KSampler", "inputs": {"seed": i, "steps": 1, "cfg": 1, "sampler_name": "euler",
                                                           "positive": ["c0", 0]}} for i in range(n)}
    return graph


def comfy_workflow(graph: dict) -> dict:
    """The UI workflow ComfyUI saves beside the graph ("workflow" chunk): nodes and links."""
    links, nodes = [], []
    for target, node in graph.items():
        nodes.append({"id": int(target), "type": node["class_type"], "widgets_values": []})
        for slot, (name, value) in enumerate(node["inputs"].items()):
            if isinstance(value, list):
                links.append([len(links) + 1, int(value[0]), value[1], int(target), slot, name.upper()])
    return {"last_node_id": max(map(int, graph)), "last_link_id": len(links), "nodes": nodes, "links": links,
            "groups": [], "config": {}, "extra": {}, "version": 0.4}


def comfy_png(path: Path, graph: dict, workflow: bool = True, seed: int = 11) -> Path:
    text = {"prompt": json.dumps(graph)}
    if workflow:
        text["workflow"] = json.dumps(comfy_workflow(graph))
    return png(path, text, seed=seed)


def comfy_hires_graph() -> dict:
    """Two samplers: a first pass (previewed), a latent upscale and a second pass with a prompt and seed of its own
    that made the saved image."""
    graph = comfy_graph()
    graph["3"]["inputs"]["seed"] = 1001
    graph |= {
        "10": {"class_type": "LatentUpscale", "inputs": {"upscale_method": "nearest-exact", "width": 1024, "height": 1024,
                                                         "crop": "disabled", "samples": ["3", 0]}},
        "11": {"class_type": "KSampler", "inputs": {"seed": 2002, "steps": 14, "cfg": 6.5, "sampler_name": "dpmpp_2m",
                                                    "scheduler": "karras", "denoise": 0.5, "model": ["4", 0],
                                                    "positive": ["12", 0], "negative": ["7", 0], "latent_image": ["10", 0]}},
        "12": {"class_type": "CLIPTextEncode", "inputs": {"text": "glass bottle landscape, intricate detail", "clip": ["4", 1]}},
        "13": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "14": {"class_type": "PreviewImage", "inputs": {"images": ["13", 0]}},
    }
    graph["8"]["inputs"]["samples"] = ["11", 0]
    graph["9"]["inputs"]["filename_prefix"] = "hires/upscaled"
    return graph


def comfy_refiner_graph() -> dict:
    """ComfyUI's SDXL base + refiner example: two checkpoints, two KSamplerAdvanced, a LoRA on the base."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "12": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_refiner_1.0.safetensors"}},
        "20": {"class_type": "LoraLoader", "inputs": {"lora_name": "pixel-art-xl.safetensors", "strength_model": 0.8,
                                                      "strength_clip": 0.8, "model": ["4", 0], "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "evening sunset scenery blue sky nature, glass bottle", "clip": ["20", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["20", 1]}},
        "15": {"class_type": "CLIPTextEncode", "inputs": {"text": "evening sunset scenery blue sky nature, glass bottle", "clip": ["12", 1]}},
        "16": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["12", 1]}},
        "10": {"class_type": "KSamplerAdvanced", "inputs": {"add_noise": "enable", "noise_seed": 721897303308196, "steps": 25,
                                                            "cfg": 8.0, "sampler_name": "euler", "scheduler": "normal",
                                                            "start_at_step": 0, "end_at_step": 20, "return_with_leftover_noise": "enable",
                                                            "model": ["20", 0], "positive": ["6", 0], "negative": ["7", 0],
                                                            "latent_image": ["5", 0]}},
        "11": {"class_type": "KSamplerAdvanced", "inputs": {"add_noise": "disable", "noise_seed": 0, "steps": 25, "cfg": 8.0,
                                                            "sampler_name": "euler", "scheduler": "normal", "start_at_step": 20,
                                                            "end_at_step": 10000, "return_with_leftover_noise": "disable",
                                                            "model": ["12", 0], "positive": ["15", 0], "negative": ["16", 0],
                                                            "latent_image": ["10", 0]}},
        "17": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["12", 2]}},
        "19": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["17", 0]}},
    }


def comfy_regions_graph() -> dict:
    """Several subjects: two prompts, one set to an area, combined into the sampler's positive conditioning."""
    graph = comfy_graph()
    graph["6"]["inputs"]["text"] = "a knight in silver armour"
    graph |= {
        "21": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red dragon", "clip": ["4", 1]}},
        "22": {"class_type": "ConditioningSetArea", "inputs": {"width": 256, "height": 512, "x": 256, "y": 0,
                                                               "strength": 1.0, "conditioning": ["21", 0]}},
        "23": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["6", 0], "conditioning_2": ["22", 0]}},
    }
    graph["3"]["inputs"]["positive"] = ["23", 0]
    return graph


def fooocus_png(path: Path) -> Path:
    """Fooocus 2.5's own scheme: sorted JSON in "parameters", "fooocus_scheme" beside it (the seed is a string)."""
    meta = {
        "adm_guidance": "(1.5, 0.8, 0.3)", "base_model": "juggernautXL_v8Rundiffusion", "base_model_hash": "aeb7e9e689",
        "full_negative_prompt": ["unrealistic, saturated", "blurry"], "full_prompt": ["a red fox in snow, cinematic"],
        "guidance_scale": 4, "loras": [["sd_xl_offset_example-lora_1.0.safetensors", 0.1, "4852686128"]],
        "negative_prompt": "blurry", "performance": "Speed", "prompt": "a red fox in snow",
        "refiner_model": "realisticStockPhoto_v20", "refiner_model_hash": "f9ba6ffab4", "refiner_switch": 0.5,
        "resolution": "(1152, 896)", "sampler": "dpmpp_2m_sde_gpu", "scheduler": "karras", "seed": "8472836451",
        "sharpness": 2, "steps": 30, "styles": "['Fooocus V2', 'Fooocus Enhance']", "vae": "Default (model)",
        "version": "Fooocus v2.5.5",
    }
    return png(path, {"parameters": json.dumps(meta), "fooocus_scheme": "fooocus"}, seed=5)


NOVELAI_COMMENT = {
    "prompt": "1girl, silver hair, night sky, best quality", "steps": 28, "height": 1216, "width": 832, "scale": 5.0,
    "uncond_scale": 1.0, "cfg_rescale": 0.0, "seed": 3046187744, "n_samples": 1, "hide_debug_overlay": False,
    "noise_schedule": "native", "sampler": "k_euler_ancestral", "controlnet_strength": 1.0, "controlnet_model": None,
    "dynamic_thresholding": False, "sm": False, "sm_dyn": False, "uc": "lowres, bad anatomy, bad hands",
    "request_type": "PromptGenerateRequest", "signed_hash": "A9f3kdmPq0xZ",
}


def novelai_text() -> dict[str, str]:
    return {"Title": "AI generated image", "Description": NOVELAI_COMMENT["prompt"], "Software": "NovelAI",
            "Source": "NovelAI Diffusion V3 7BCCAA2C", "Generation time": "5.1", "Comment": json.dumps(NOVELAI_COMMENT)}


def novelai_png(path: Path) -> Path:
    """NovelAI: text chunks, and the same in the alpha channel as stealth JSON (it saves RGBA)."""
    image = stealth(pixels((96, 96), seed=9), json.dumps(novelai_text()))
    return png(path, novelai_text(), image=image)


def invokeai2_dream_png(path: Path) -> Path:
    """InvokeAI 2.x before sd-metadata: only the "Dream" command line (the negative prompt in brackets)."""
    return png(path, {"Dream": '"a cottage in the woods, oil painting [people, text]" -s 50 -S 2093118113 -W 512 -H 512 '
                               '-C 7.5 -A k_lms'}, seed=13)


def invokeai2_png(path: Path) -> Path:
    """InvokeAI 2.2/2.3: "sd-metadata" JSON and the "Dream" line beside it."""
    meta = {"model": "stable diffusion", "model_weights": "stable-diffusion-1.5", "model_hash": "cc6cb27103417325ff94f52b7a5d2dde45a7515b25c255d8e396c90014281516",
            "app_id": "invoke-ai/InvokeAI", "app_version": "2.3.5",
            "image": {"prompt": [{"prompt": "a cottage in the woods, oil painting [people, text]", "weight": 1.0}],
                      "steps": 50, "cfg_scale": 7.5, "threshold": 0, "perlin": 0, "height": 512, "width": 512,
                      "seed": 2093118113, "seamless": False, "hires_fix": False, "type": "txt2img",
                      "postprocessing": None, "sampler": "k_lms", "variations": []}}
    return png(path, {"Dream": '"a cottage in the woods, oil painting [people, text]" -s 50 -S 2093118113 -W 512 -H 512 -C 7.5 -A k_lms',
                      "sd-metadata": json.dumps(meta)}, seed=14)


def invokeai3_png(path: Path, v4: bool = False) -> Path:
    """InvokeAI 3.x ("model_name") or 4+/5 ("name", "hash"): "invokeai_metadata" JSON beside "invokeai_graph"."""
    model = ({"key": "b3c1f0e2", "hash": "blake3:8c9e2d", "name": "dreamshaper-8", "base": "sd-1", "type": "main"} if v4
             else {"model_name": "dreamshaper-8", "base_model": "sd-1", "model_type": "main"})
    meta = {"generation_mode": "txt2img", "positive_prompt": "a fox in a misty forest, volumetric light",
            "negative_prompt": "text, watermark", "width": 768, "height": 512, "seed": 770544131, "rand_device": "cpu",
            "cfg_scale": 7, "cfg_rescale_multiplier": 0, "steps": 30, "scheduler": "dpmpp_2m_k", "clip_skip": 0,
            "model": model, "app_version": "4.2.4" if v4 else "3.6.2"}
    return png(path, {"invokeai_metadata": json.dumps(meta), "invokeai_graph": json.dumps({"id": "graph", "nodes": {}})},
               seed=15 + v4)
