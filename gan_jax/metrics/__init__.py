"""Evaluation: sample-quality scores (FID, KID, IS, precision/recall) and the feature extractors
they are computed in (InceptionV3 for the standard numbers, a small trained classifier offline)."""
