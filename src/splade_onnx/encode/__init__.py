"""Text -> tokens -> onnxruntime session run -> sparse vectors: the :class:`~splade_onnx.encode.expander.Expander`
and the pieces it is made of (session, tokenization, the batching loop, windows, query roles, pruning, streaming)."""
