"""Torch-free artifact builders: ``fuse`` (SPLADE head on a published logits ONNX), ``idf`` (document-only queries)
and ``pair`` (a document model and a query model in one artifact)."""
