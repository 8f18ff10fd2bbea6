"""LoRAs as a prompt's ``<lora:NAME:STRENGTH>`` tags ask (``compose/networks.py``): each found by its A1111 name in
the installs the settings name (``model_files``), loaded into a pipeline once with diffusers' own LoRA loading (the
kohya / A1111 and diffusers formats; peft does the layers) and kept with the warm model, then switched for each batch
to the strengths of its prompt — on the text encoder(s) and on the UNet — or turned off for a prompt with none (the
model's own outputs, bit for bit)."""

from __future__ import annotations

import hashlib
import logging
import warnings

from ..compose.networks import Network
from ..errors import RunError
from ..quiet import quieted
from ..settings import load_settings
from .model_files import ModelFile, find

TEXT_ENCODERS = ("text_encoder", "text_encoder_2")


def lora_file(name: str) -> ModelFile:
    """The LoRA ``name`` means; RunError naming the LoRAs there are otherwise, or one that is not safetensors."""
    found = find(load_settings(), "lora", name)
    if found.pickled:
        raise RunError(f"LoRA {name} is a pickle file ({found.path.name}), which can run code when loaded: use its "
                       ".safetensors")
    return found


def _why(exc: Exception) -> str:
    text = str(exc)
    if "size mismatch" in text:
        return ("its layers have other sizes than this model's — a LoRA made for another model family (SD 1.x, SD 2.x "
                "and SDXL LoRAs do not mix): use one made for this model")
    return (text.splitlines()[0] if text else exc.__class__.__name__)[:200]


def _forget(pipe, adapter: str) -> None:
    """Take out of ``pipe`` what a failed load left of ``adapter`` (a text encoder's part may have loaded)."""
    if any(adapter in names for names in pipe.get_list_adapters().values()):
        with warnings.catch_warnings():  # (peft's note that the adapter was active: it was half loaded)
            warnings.simplefilter("ignore")
            pipe.delete_adapters(adapter)


def adapter_name(name: str) -> str:
    """The adapter a LoRA is loaded as (peft's names must be identifiers)."""
    return "lora_" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]


def activate(pipe, wanted: tuple[Network, ...]) -> None:
    """Switch ``pipe`` to ``wanted``'s LoRAs at their strengths (loading those it has not yet), or turn its LoRAs
    off when there are none."""
    loaded = {name for names in pipe.get_list_adapters().values() for name in names}
    if not wanted:
        if loaded:
            pipe.disable_lora()
        return
    for network in wanted:
        adapter = adapter_name(network.name)
        if adapter not in loaded:
            path = lora_file(network.name).path
            try:
                # (diffusers logs a failed load's whole error, a line per layer, before raising it: the line is ours)
                with warnings.catch_warnings(), quieted("diffusers", level=logging.CRITICAL):  # (peft's note: a model
                    warnings.filterwarnings("ignore", message="Already found a `peft_config`")  # holds several adapters)
                    warnings.filterwarnings("ignore", message="Adapter .* was active which is now deleted")  # (a
                    # failed load's clean-up: said in our one line)
                    pipe.load_lora_weights(str(path), adapter_name=adapter)
            except Exception as exc:  # noqa: BLE001 - another model family's LoRA, a broken file: one line
                _forget(pipe, adapter)
                raise RunError(f"LoRA {network.name} ({path.name}) does not fit this model: {_why(exc)}") from None
            loaded.add(adapter)
    parts = pipe.get_list_adapters()
    weights = [{part: network.te if part in TEXT_ENCODERS else network.unet
                for part, names in parts.items() if adapter_name(network.name) in names} for network in wanted]
    pipe.enable_lora()
    pipe.set_adapters([adapter_name(n.name) for n in wanted], adapter_weights=weights)
