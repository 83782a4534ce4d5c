"""Trains small models with scikit-learn, XGBoost, PyTorch and Keras and exports them to ONNX for the
serving tests, each with its framework's own exporter (skl2onnx, onnxmltools, torch.onnx, Keras' tf2onnx).

    python3 export.py sklearn|xgboost|torch|keras OUT_DIR

Each model goes to OUT_DIR/<name>/model.onnx beside an expected.json holding the instances to send
and what the framework itself answered for them, so the test compares Kiln's predictions with the
framework's own output rather than with numbers written down here.
"""
import csv
import gzip
import json
import os
import sys

import warnings

import numpy as np

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "data", "sklearn-toy")


def load(name):
    """scikit-learn's toy CSV layout: a header row of counts and class names, then features + label."""
    path = os.path.join(DATA, name)
    with (gzip.open(path, "rt") if name.endswith(".gz") else open(path)) as f:
        rows = list(csv.reader(f))[1:]
    table = np.array(rows, dtype=np.float64)
    return table[:, :-1], table[:, -1].astype(np.int64)


def save(out, name, model_bytes, instances, expected):
    directory = os.path.join(out, name)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "model.onnx"), "wb") as f:
        f.write(model_bytes)
    with open(os.path.join(directory, "expected.json"), "w") as f:
        json.dump({"instances": instances, "expected": expected}, f)


def sklearn(out):
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    # Operator sets tract is tested against; skl2onnx defaults to newer ones.
    opset = {"": 17, "ai.onnx.ml": 3}

    def export(name, model, x, rows, expected):
        onnx = to_onnx(model, x[:1].astype(np.float32), target_opset=opset)
        save(out, name, onnx.SerializeToString(), x[rows].tolist(), expected)

    def classifier(name, model, x, y):
        model.fit(x, y)
        rows = np.arange(0, len(x), 7)
        export(name, model, x, rows, {
            "label": model.predict(x[rows]).tolist(),
            "probabilities": model.predict_proba(x[rows]).tolist(),
        })

    iris_x, iris_y = load("iris.csv")
    cancer_x, cancer_y = load("breast_cancer.csv")
    wine_x, _ = load("wine_data.csv")
    # Scaler, LinearClassifier, Normalizer and ZipMap: skl2onnx's default output for a pipeline.
    classifier("iris_logreg", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), iris_x, iris_y)
    # TreeEnsembleClassifier.
    classifier("cancer_forest", RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0), cancer_x, cancer_y)
    # LinearRegressor: alcohol from the other wine measurements.
    regression = LinearRegression().fit(wine_x[:, 1:], wine_x[:, 0])
    rows = np.arange(0, len(wine_x), 5)
    export("wine_linear", regression, wine_x[:, 1:], rows, {"variable": regression.predict(wine_x[rows, 1:]).tolist()})
    # TreeEnsembleRegressor averaging its trees.
    forest = RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0).fit(wine_x[:, 1:], wine_x[:, 0])
    export("wine_forest", forest, wine_x[:, 1:], rows, {"variable": forest.predict(wine_x[rows, 1:]).tolist()})
    # SVMClassifier: ONNX Runtime has it, tract does not (version create must name it).
    warnings.simplefilter("ignore", FutureWarning)  # SVC's probA_, read by skl2onnx
    svc = SVC().fit(iris_x, iris_y)
    svc_rows = np.arange(0, len(iris_x), 10)
    export("iris_svc", svc, iris_x, svc_rows, {"label": svc.predict(iris_x[svc_rows]).tolist()})
    # An operator of a domain no engine knows, which every engine must refuse by name.
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node("Mystery", ["X"], ["Y"], domain="com.example")], "mystery",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 4])])
    mystery = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    save(out, "mystery", mystery.SerializeToString(), [[1.0, 2.0, 3.0, 4.0]], {})
    # A string input (CategoryMapper: colour name to id), which takes ML Engine's {"b64": ...} too.
    colours = ["red", "green", "blue"]
    graph = helper.make_graph(
        [helper.make_node("CategoryMapper", ["colour"], ["id"], domain="ai.onnx.ml", cats_strings=colours,
                          cats_int64s=[0, 1, 2], default_int64=-1)], "colours",
        [helper.make_tensor_value_info("colour", TensorProto.STRING, [None])],
        [helper.make_tensor_value_info("id", TensorProto.INT64, [None])])
    mapper = helper.make_model(graph, ir_version=8,
                               opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    save(out, "colour_ids", mapper.SerializeToString(), colours + ["mauve"], {"id": [0, 1, 2, -1]})


def xgboost(out):
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType
    from xgboost import XGBClassifier, XGBRegressor

    def export(name, model, x, rows, expected):
        # onnxmltools converts XGBoost models up to operator set 15.
        onnx = onnxmltools.convert_xgboost(model, initial_types=[("features", FloatTensorType([None, x.shape[1]]))],
                                           target_opset=15)
        save(out, name, onnx.SerializeToString(), x[rows].tolist(), expected)

    # Binary and multi-class TreeEnsembleClassifier, and a TreeEnsembleRegressor. XGBoost computes in float32,
    # as the ONNX trees do, so its own answers are what Kiln must give.
    for name, data in (("cancer_xgb", "breast_cancer.csv"), ("iris_xgb", "iris.csv")):
        x, y = load(data)
        x = x.astype(np.float32)
        model = XGBClassifier(n_estimators=20, max_depth=3, random_state=0).fit(x, y)
        rows = np.arange(0, len(x), 7)
        export(name, model, x, rows, {"label": model.predict(x[rows]).tolist(),
                                      "probabilities": model.predict_proba(x[rows]).tolist()})
    wine_x, _ = load("wine_data.csv")
    wine_x = wine_x.astype(np.float32)
    regressor = XGBRegressor(n_estimators=20, max_depth=3, random_state=0).fit(wine_x[:, 1:], wine_x[:, 0])
    rows = np.arange(0, len(wine_x), 5)
    export("wine_xgb", regressor, wine_x[:, 1:], rows, {"variable": regressor.predict(wine_x[rows, 1:]).tolist()})


def torch(out):
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch.set_num_threads(2)
    x, y = load("digits.csv.gz")
    pixels = torch.tensor(x / 16.0, dtype=torch.float32)
    labels = torch.tensor(y)

    def train(model, inputs):
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        for _ in range(30):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(inputs), labels)
            loss.backward()
            optimizer.step()
        return model.eval()

    def export(name, model, inputs):
        rows = torch.arange(0, len(inputs), 37)
        batch = torch.export.Dim("batch")
        program = torch.onnx.export(
            model, (inputs[:2],), input_names=["pixels"], output_names=["logits"],
            dynamic_shapes=({0: batch},), opset_version=18, dynamo=True,
        )
        with torch.no_grad():
            logits = model(inputs[rows])
        save(out, name, program.model_proto.SerializeToString(), inputs[rows].tolist(), {"logits": logits.tolist()})

    mlp = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    export("digits_mlp", train(mlp, pixels), pixels)
    images = pixels.reshape(-1, 1, 8, 8)
    cnn = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, 10),
    )
    export("digits_cnn", train(cnn, images), images)

    class FromBytes(nn.Module):
        """The MLP over raw 8-bit pixels: the model scales them itself."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, raw):
            return self.model(raw.float() / 255.0)

    raw = torch.tensor(np.minimum(x * 16, 255), dtype=torch.uint8)
    export("digits_bytes", FromBytes(mlp).eval(), raw)


def keras(out):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    tf.config.threading.set_intra_op_parallelism_threads(2)
    x, y = load("digits.csv.gz")
    images = (x / 16.0).reshape(-1, 8, 8, 1).astype(np.float32)
    # Keras' channels-last layers: Conv2D, MaxPooling2D, Flatten, Dense with a softmax.
    model = keras.Sequential([
        keras.Input((8, 8, 1), name="image"),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(images, y, epochs=3, batch_size=64, verbose=0)
    path = os.path.join(out, "digits_keras", "model.onnx")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    warnings.simplefilter("ignore", FutureWarning)  # tf2onnx's np.object probe
    model.export(path, format="onnx", verbose=False)
    rows = np.arange(0, len(images), 37)
    with open(os.path.join(out, "digits_keras", "expected.json"), "w") as f:
        json.dump({"instances": images[rows].tolist(),
                   "expected": {"probabilities": model.predict(images[rows], verbose=0).tolist()}}, f)


if __name__ == "__main__":
    {"sklearn": sklearn, "xgboost": xgboost, "torch": torch, "keras": keras}[sys.argv[1]](sys.argv[2])
