"""Kiln's ONNX converter: turns one framework model into ONNX and writes the check set it must pass.

Started as `python converter.py FRAMEWORK MODEL_DIR OUT_DIR` beside predictor.py, in the runtime's converter
environment (the framework, its converter and ONNX). Writes OUT_DIR/model.onnx and OUT_DIR/check.json:
{"instances": [...], "predictions": [...], "converter": "skl2onnx 1.20.0", "framework": "scikit-learn 1.9.1"},
where the predictions are what the framework workers answer for those instances (predictor.py's
classes make them). The server serves the ONNX form only if it predicts the same. Exits non-zero with
the reason on stderr when the model cannot be converted.

The ONNX form answers as ML Engine does for the framework: a scikit-learn classifier's label, an
XGBoost booster's `predict` (P(class 1) for a binary classifier), a SavedModel's signature outputs.
"""

import json
import os
import subprocess
import sys

import numpy as np

import predictor

# Rows per scale in the check set, and the scales: features of unknown range are drawn around zero
# at three magnitudes, so that split points and saturations of several sizes are crossed.
ROWS_PER_SCALE = 32
SCALES = (1.0, 10.0, 100.0)


def check_rows(width):
    """The check set's feature rows, as float32 values (what the ONNX graph computes on)."""
    generator = np.random.default_rng(0)
    rows = np.concatenate(
        [generator.normal(size=(ROWS_PER_SCALE, width)) * scale for scale in SCALES]
    )
    return rows.astype(np.float32)


def single_output(model, keep, column=None, flatten=False):
    """Keeps only the graph output named `keep`, taking its `column` (axis 1) or flattening it to
    one value per row, so that the graph answers as the framework does."""
    from onnx import TensorProto, ValueInfoProto, helper

    graph = model.graph
    output = ValueInfoProto()
    output.CopyFrom(next(item for item in graph.output if item.name == keep))
    if column is not None or flatten:
        final = keep + "_prediction"
        if column is not None:
            index = helper.make_tensor(final + "_index", TensorProto.INT64, [], [column])
            graph.node.append(helper.make_node("Gather", [keep, index.name], [final], axis=1))
        else:
            index = helper.make_tensor(final + "_shape", TensorProto.INT64, [1], [-1])
            graph.node.append(helper.make_node("Reshape", [keep, index.name], [final]))
        graph.initializer.append(index)
        if not any(opset.domain in ("", "ai.onnx") for opset in model.opset_import):
            # Tree-only graphs import just the ML domain; the node added needs the default one.
            model.opset_import.append(helper.make_opsetid("", 15))
        element = output.type.tensor_type.elem_type
        output = helper.make_tensor_value_info(final, element, [None])
    del graph.output[:]
    graph.output.append(output)
    # Drop what only fed the outputs let go (a classifier's ZipMap of probabilities, say): an engine
    # may refuse an operator there that the kept output never needs. Nodes are in topological order.
    needed, kept = {output.name}, []
    for node in reversed(graph.node):
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    return model


def check_instances(framework, served):
    """The check set's instances: feature rows for scikit-learn and XGBoost, a SavedModel's float
    inputs for TensorFlow."""
    if framework == "SCIKIT_LEARN":
        if served.width is None:
            raise ValueError(
                "the model does not say how many features it takes (no n_features_in_), so there is "
                "no check set to compare its ONNX form on"
            )
        return check_rows(served.width).tolist()
    if framework == "XGBOOST":
        return check_rows(served.booster.num_features()).tolist()
    spec = served.spec("serving_default")["inputs"]
    columns = {}
    for name, tensor in sorted(spec.items()):
        dims = tensor["shape"][1:]
        if not tensor["dtype"].startswith("float") or any(dim is None for dim in dims):
            raise ValueError(
                "input %r is %s of shape %s per instance; a check set is made only for float "
                "inputs of fixed shape" % (name, tensor["dtype"], dims)
            )
        values = check_rows(int(np.prod(dims, dtype=np.int64)))
        columns[name] = values.reshape([len(values)] + dims).tolist()
    if len(columns) == 1:
        (instances,) = columns.values()
        return instances
    count = ROWS_PER_SCALE * len(SCALES)
    return [{name: values[row] for name, values in columns.items()} for row in range(count)]


def convert_scikit_learn(served, predictions, model_dir, out_dir):
    import skl2onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.base import is_classifier

    model = skl2onnx.convert_sklearn(
        served.model,
        initial_types=[("input", FloatTensorType([None, served.width]))],
        target_opset=17,
    )
    first = model.graph.output[0].name
    flatten = not is_classifier(served.model) and np.ndim(predictions) == 1
    return "skl2onnx " + skl2onnx.__version__, single_output(model, first, flatten=flatten)


def convert_xgboost(served, predictions, model_dir, out_dir):
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    width = served.booster.num_features()
    model = onnxmltools.convert_xgboost(
        served.booster,
        initial_types=[("input", FloatTensorType([None, width]))],
        target_opset=15,
    )
    names = [output.name for output in model.graph.output]
    if "probabilities" in names:
        column = 1 if np.ndim(predictions) == 1 else None
        model = single_output(model, "probabilities", column=column)
    else:
        model = single_output(model, names[0], flatten=np.ndim(predictions) == 1)
    return "onnxmltools " + onnxmltools.__version__, model


def convert_tensorflow(served, predictions, model_dir, out_dir):
    import onnx
    import tf2onnx

    path = os.path.join(out_dir, "converted.onnx")
    subprocess.run(
        [sys.executable, "-m", "tf2onnx.convert", "--saved-model", model_dir, "--signature_def",
         "serving_default", "--opset", "17", "--output", path],
        check=True, stdout=sys.stderr,
    )
    model = onnx.load(path)
    os.remove(path)
    # The signature's names, without the ":0" that tf2onnx may leave on them.
    for tensor in list(model.graph.input) + list(model.graph.output):
        if tensor.name.endswith(":0"):
            old = tensor.name
            tensor.name = old[:-2]
            for node in model.graph.node:
                node.input[:] = [tensor.name if item == old else item for item in node.input]
                node.output[:] = [tensor.name if item == old else item for item in node.output]
    return "tf2onnx " + tf2onnx.__version__, model


CONVERTERS = {"SCIKIT_LEARN": convert_scikit_learn, "XGBOOST": convert_xgboost, "TENSORFLOW": convert_tensorflow}


def main():
    framework, model_dir, out_dir = sys.argv[1:4]
    served = predictor.FRAMEWORKS[framework](model_dir)
    instances = check_instances(framework, served)
    predictions = served.predict(instances, None)
    converter, model = CONVERTERS[framework](served, predictions, model_dir, out_dir)
    import onnx

    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out_dir, "model.onnx"))
    check = {
        "instances": instances,
        "predictions": predictions,
        "converter": converter,
        "framework": served.version,
    }
    with open(os.path.join(out_dir, "check.json"), "w") as file:
        json.dump(check, file, allow_nan=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
