"""Stage 5, export: LoRA adapter, merged safetensors, GGUF, Modelfile and install into Ollama."""
