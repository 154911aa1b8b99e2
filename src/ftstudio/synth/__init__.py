"""Stage 3, synthetic data: a helper LLM (Ollama, OpenRouter, OpenAI-compatible) writes grounded SFT pairs."""
