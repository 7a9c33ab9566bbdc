"""Dataset spec → fine-tuned ConvNeXt hashing model dir (save_pretrained)."""
