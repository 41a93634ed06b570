"""StyleGAN2-ADA networks in pure PyTorch, and their checkpoints.

- `ops`: FIR resampling (upfirdn2d), bias + activation, resampling and modulated convolutions.
- `networks`: FullyConnectedLayer, Conv2dLayer, MappingNetwork, the synthesis network and
  Generator, the resnet Discriminator. Class, parameter and buffer names follow NVIDIA's
  release, so an official state dict loads by name (see `official.STATE_DICT_TABLE`).
- `config`: the preset table (`auto`, `stylegan2`, `paper256/512/1024`, `cifar`, `tiny`).
- `official`: reading NVIDIA's `network-snapshot-*.pkl` without running its code.
- `checkpoint`: our safetensors model files and `load_model`.
"""
