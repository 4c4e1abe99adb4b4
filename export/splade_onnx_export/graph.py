"""ONNX graph helpers shared by the export steps: running a graph with onnxruntime, writing onnxruntime's
optimised copy of it, saving (with external data when large), moving its weights to ``model.onnx_data``, and
finding the max-pooled head slices that the variants rewrite."""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence

import numpy as np

from splade_onnx.artifact.manifest import MODEL_DATA_NAME, OUTPUT_NAME
from splade_onnx.encode.session import create_session
from splade_onnx.errors import ExportParityError

Feeds = Dict[str, np.ndarray]

# op_type -> (gamma input index, beta input index) of the layer norms whose output 0 is gamma * norm + beta
LAYER_NORM_AFFINE = {
    "LayerNormalization": (1, 2),
    "SkipLayerNormalization": (2, 3),
    "SimplifiedLayerNormalization": (1, None),
    "SkipSimplifiedLayerNormalization": (2, None),
    "EmbedLayerNormalization": (5, 6),
}


def run_graph(
    model_path: str, feeds_list: Sequence[Feeds], outputs: Sequence[str], *, basic_optimization: bool = False
) -> List[List[np.ndarray]]:
    """``outputs`` of ``model_path`` for each feed dict (one CPU session; feeds the graph lacks are
    dropped)."""
    sess = create_session(model_path, basic_optimization=basic_optimization)
    names = {i.name for i in sess.get_inputs()}
    return [sess.run(list(outputs), {k: v for k, v in f.items() if k in names}) for f in feeds_list]


def run_onnx(model_path: str, feeds: Feeds) -> np.ndarray:
    """The ``sparse_weights`` output of ``model_path`` for one batch of feeds, on CPU."""
    return run_graph(model_path, [feeds], [OUTPUT_NAME])[0][0]


def write_optimized(src: str, dst: str, level: str = "extended") -> None:
    """Write onnxruntime's optimised copy of ``src`` to ``dst`` (a session with ``optimized_model_filepath``).

    ``level``: ``"extended"`` bakes in the hardware-independent fusions (``ORT_ENABLE_ALL`` would add layout
    transforms tied to this CPU); ``"basic"``: constant folding and redundancy removal only."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }[level]
    so.optimized_model_filepath = dst
    ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def save_model(model: Any, path: str) -> None:
    """``onnx.save_model``, with the weights in ``<path>.data`` beside it for graphs over 1 GB."""
    import onnx

    big = model.ByteSize() > (1 << 30)
    onnx.save_model(
        model,
        path,
        save_as_external_data=big,
        all_tensors_to_one_file=True,
        location=os.path.basename(path) + ".data" if big else None,
    )


def externalize_weights(model_path: str, feeds: Feeds, expected: Optional[np.ndarray] = None) -> None:
    """Rewrite ``model_path`` with its weights in ``model.onnx_data`` beside it (ONNX external data, one
    file), and check that onnxruntime gives bit-identical output from the new pair (``expected``: by default
    the output of the graph before the rewrite). onnxruntime maps external weights instead of parsing them out
    of the protobuf: session creation on splade-tiny drops from ~80 to ~35 ms."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    if expected is None:
        expected = run_onnx(model_path, feeds)
    folder = os.path.dirname(os.path.abspath(model_path))
    graph_only = onnx.load(model_path, load_external_data=False)
    old_files = {
        os.path.join(folder, e.value)
        for t in all_tensors(graph_only.graph)
        if uses_external_data(t)
        for e in t.external_data
        if e.key == "location"
    }
    del graph_only
    model = onnx.load(model_path)  # pulls in any external data torch.onnx.export wrote (models over 2 GB)
    tmp = model_path + ".tmp"
    onnx.save_model(
        model,
        tmp,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=MODEL_DATA_NAME,
        size_threshold=1024,
    )
    del model
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(os.path.join(folder, MODEL_DATA_NAME), 0o666 & ~umask)  # onnx writes it owner-only
    os.replace(tmp, model_path)
    for path in old_files - {os.path.join(folder, MODEL_DATA_NAME)}:  # now all inside model.onnx_data
        if os.path.isfile(path):
            os.remove(path)
    if not np.array_equal(run_onnx(model_path, feeds), expected):
        msg = "the graph with external weights does not reproduce the graph it was written from"
        raise ExportParityError(msg)


def all_tensors(graph: Any) -> Iterator[Any]:
    """Every tensor stored in ``graph``: initializers and node attributes, subgraphs included."""
    yield from graph.initializer
    for n in graph.node:
        for a in n.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            if a.HasField("g"):
                yield from all_tensors(a.g)
            for g in a.graphs:
                yield from all_tensors(g)


def consumers(graph: Any) -> Dict[str, List[Any]]:
    """Tensor name -> the nodes that read it, in graph order."""
    out: Dict[str, List[Any]] = {}
    for n in graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


class HeadNodes(NamedTuple):
    """The max-pooled head of an exported graph (``FusedSplade`` with max pooling, token-major slices)."""

    slices: List[Any]  # the slice MatMuls (``h @ w_head_i``), in vocabulary order
    input: str  # their common input ``h`` [B, S, H]
    bias_add: Any  # the Add of the bias after the Concat of the slices' maxima


def head_nodes(graph: Any) -> HeadNodes:
    """Find the head slices, each followed by a ReduceMax, their maxima joined by one Concat, then the bias
    Add; ``ValueError`` where the graph has no such head (sum pooling, or not an exported graph)."""
    matmuls = [n for n in graph.node if n.op_type == "MatMul" and len(n.input) > 1]
    heads = [n for n in matmuls if n.input[1].startswith("w_head_")]
    if not heads or len({n.input[0] for n in heads}) != 1:
        msg = "no max-pooled head slices (w_head_*) in the graph: only max pooling can be screened"
        raise ValueError(msg)
    readers = consumers(graph)
    maxima = {}
    for n in heads:
        (red,) = readers[n.output[0]]
        if red.op_type != "ReduceMax":
            raise ValueError(f"head slice {n.name} is not followed by ReduceMax")
        maxima[red.output[0]] = n
    concat = [n for n in graph.node if n.op_type == "Concat" and set(n.input) == set(maxima)]
    if len(concat) != 1:
        raise ValueError("the head slices' maxima are not concatenated by one Concat")
    (add,) = readers[concat[0].output[0]]
    if add.op_type != "Add":
        raise ValueError("the head maxima are not followed by the bias Add")
    return HeadNodes([maxima[i] for i in concat[0].input], heads[0].input[0], add)


__all__ = [
    "LAYER_NORM_AFFINE",
    "run_graph",
    "run_onnx",
    "write_optimized",
    "save_model",
    "externalize_weights",
    "all_tensors",
    "consumers",
    "HeadNodes",
    "head_nodes",
]
