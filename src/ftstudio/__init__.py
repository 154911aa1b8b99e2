"""ftstudio: turn your own documents into a fine-tuned language model on your own machine.

The pipeline, one subpackage per stage in the order data flows:
knowledge (documents → chunks) → basemodels (what to train) → synth (chunks → SFT pairs)
→ train (LoRA/QLoRA) → export (adapter, merged, GGUF, Ollama). The CLI and the UI are thin faces over it.
"""

__version__ = "0.1.0"
