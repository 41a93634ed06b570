"""ganscapes: new impressionist landscape paintings with StyleGAN2-ADA and CLIP.

The package is a library first; `ganscapes.cli` is a thin command-line layer over it.
Stages follow the GANscapes pipeline: gather → prepare → curate → train → generate →
rank → mix / guide → post.
"""

__version__ = "0.1.0"
