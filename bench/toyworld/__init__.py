"""The toy world: a tiny SD1-layout diffusion model trained on coloured shapes (issue 13).

Scenes with exact object masks (``scenes``), a 77-token CLIP-layout text encoder (``text``), the
real ldm UNet at tiny width (``model``), training scripts for the base and for LoRAs, and an
evaluation; the trained weights live in ``fixtures/`` and how they were made in NOTES.md.
"""
