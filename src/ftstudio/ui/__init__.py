"""The studio: a Gradio Blocks app with one tab per pipeline step, thin over the core (`ftstudio ui`)."""
