"""Data stages: gathering raw paintings, the sample generator, and dataset preparation."""
