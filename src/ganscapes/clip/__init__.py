"""CLIP stages: the encoder and its embedding cache, prompts and scores, curate and rank."""
