"""GGUF export written on the `gguf` Python package: tensor maps per architecture, tokenizer, quantization."""
