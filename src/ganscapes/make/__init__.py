"""Making pictures from a trained model: generate, mix, guide, post, provenance."""
