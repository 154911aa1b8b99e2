"""One module per tab; each has `build(ctx)` that lays out its widgets and wires its handlers."""
