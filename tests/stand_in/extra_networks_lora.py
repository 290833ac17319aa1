"""The built-in Lora extension of both WebUIs (``extensions-builtin/Lora``, Forge's
``sd_forge_lora``): the ``lora`` extra network (alias ``lyco``), applied globally.

``activate(p, params)`` reads each ``<lora:name:te[:unet]>`` (``te=``/``unet=`` also named) and
loads exactly those networks, replacing the previous set; with no params it unloads them. A1111
then patches every layer of the model for as long as they stay loaded; Forge re-patches
``forge_objects.unet``/``clip`` from ``forge_objects_original`` when the set changed (a patcher
``clone`` whose ``lora_patches`` hold them) and snapshots ``forge_objects_after_applying_lora``,
which sampling copies from. Nothing is read from disk here: every name is taken as available.

``loaded_networks`` is what is active now, ``activations`` every call as ``(p.is_hr_pass,
((name, te, unet), …))`` so tests can see what each pass ran with.
"""

from __future__ import annotations

from modules import extra_networks

loaded_networks: list[tuple[str, float, float]] = []
activations: list[tuple[bool, tuple[tuple[str, float, float], ...]]] = []


class ExtraNetworkLora(extra_networks.ExtraNetwork):
    def __init__(self) -> None:
        super().__init__("lora")

    def activate(self, p, params_list) -> None:
        networks = []
        for params in params_list:
            assert params.items
            te = float(params.positional[1]) if len(params.positional) > 1 else 1.0
            te = float(params.named.get("te", te))
            unet = float(params.positional[2]) if len(params.positional) > 2 else te
            unet = float(params.named.get("unet", unet))
            networks.append((params.positional[0], te, unet))
        load_networks(p.sd_model, networks)
        activations.append((bool(getattr(p, "is_hr_pass", False)), tuple(networks)))

    def deactivate(self, p) -> None:
        pass


def load_networks(sd_model, networks: list[tuple[str, float, float]]) -> None:
    loaded_networks[:] = networks
    if not hasattr(sd_model, "forge_objects"):
        return  # A1111: the loaded networks act on every layer from now on
    targets = str([[name, unet, te, False] for name, te, unet in networks])
    if sd_model.current_lora_hash == targets:
        return
    sd_model.current_lora_hash = targets
    unet = sd_model.forge_objects_original.unet
    if networks:
        unet = unet.clone()
        for name, te, unet_strength in networks:
            unet.lora_patches[(name, unet_strength, te, False)] = name
    sd_model.forge_objects.unet = unet
    sd_model.forge_objects.clip = sd_model.forge_objects_original.clip
    sd_model.forge_objects_after_applying_lora = sd_model.forge_objects.shallow_copy()


def register() -> ExtraNetworkLora:
    """What the extension's script does when it loads."""
    network = ExtraNetworkLora()
    extra_networks.register_extra_network(network)
    extra_networks.register_extra_network_alias(network, "lyco")
    loaded_networks.clear()
    activations.clear()
    return network
