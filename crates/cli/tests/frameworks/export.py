"""Trains small models with scikit-learn, XGBoost and TensorFlow and saves them as each framework
saves models for ML Engine, for the framework serving tests.

    python3 export.py sklearn|xgboost|tensorflow OUT_DIR

Each model goes to OUT_DIR/<name>/ (model.joblib, model.pkl, model.bst, a SavedModel) beside an
expected.json holding the instances to send and what the framework itself answered for them, so
the test compares Kiln's predictions with the framework's own output.
"""
import base64
import importlib.util
import json
import os
import pickle
import sys

import numpy as np

def _onnx_export():
    """The ONNX export script beside this one, for its reader of the repository's toy data."""
    path = os.path.join(os.path.dirname(__file__), "..", "onnx", "export.py")
    spec = importlib.util.spec_from_file_location("onnx_export", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


load = _onnx_export().load


def directory(out, name):
    path = os.path.join(out, name)
    os.makedirs(path, exist_ok=True)
    return path


def expect(path, instances, expected):
    with open(os.path.join(path, "expected.json"), "w") as f:
        json.dump({"instances": instances, "expected": expected}, f)


def sklearn(out):
    import joblib
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load("iris.csv")
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    path = directory(out, "iris_pipeline")
    joblib.dump(pipeline, os.path.join(path, "model.joblib"))
    rows = x[::9]
    expect(path, rows.tolist(), pipeline.predict(rows).tolist())

    texts = ["the cat sat on the mat", "dogs chase cats", "stocks fell sharply today",
             "the market rallied on earnings", "a kitten and a puppy", "bond yields rose"]
    labels = [0, 0, 1, 1, 0, 1]
    text = make_pipeline(TfidfVectorizer(), MultinomialNB()).fit(texts, labels)
    path = directory(out, "text_pipeline")
    with open(os.path.join(path, "model.pkl"), "wb") as f:
        pickle.dump(text, f)
    queries = ["a cat and a dog", "earnings and yields", "puppy on the mat"]
    expect(path, queries, text.predict(queries).tolist())

    # Not a model: unpickles, but has nothing to predict with.
    with open(os.path.join(directory(out, "not_a_model"), "model.pkl"), "wb") as f:
        pickle.dump({"weights": [1, 2, 3]}, f)

    # Raises while it is unpickled.
    class Raising:
        def __reduce__(self):
            return (eval, ("1/0",))

    with open(os.path.join(directory(out, "raises_on_load"), "model.pkl"), "wb") as f:
        pickle.dump(Raising(), f)


def xgboost(out):
    import xgboost as xgb

    x, y = load("breast_cancer.csv")
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "seed": 0},
                        xgb.DMatrix(x, label=y), 20)
    path = directory(out, "cancer_booster")
    booster.save_model(os.path.join(path, "model.bst"))
    rows = x[::23]
    expect(path, rows.tolist(), booster.predict(xgb.DMatrix(rows)).tolist())

    classifier = xgb.XGBClassifier(n_estimators=15, max_depth=2, random_state=0).fit(x, y)
    path = directory(out, "cancer_classifier")
    with open(os.path.join(path, "model.pkl"), "wb") as f:
        pickle.dump(classifier, f)
    # ML Engine serves a pickled XGBoost model through its booster: P(class 1).
    expect(path, rows.tolist(), classifier.predict_proba(rows)[:, 1].tolist())


def tensorflow(out):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.random.set_seed(0)

    # A module with two named inputs and two outputs: an object per instance.
    class Affine(tf.Module):
        def __init__(self):
            self.w = tf.Variable([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]])

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x"),
                                      tf.TensorSpec([None], tf.float32, name="scale")])
        def serve(self, x, scale):
            y = tf.matmul(x, self.w) * scale[:, None]
            return {"y": y, "total": tf.reduce_sum(y, axis=1)}

        # A second signature, named by requests' signature_name.
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def norms(self, x):
            return {"norm": tf.norm(tf.matmul(x, self.w), axis=1)}

    module = Affine()
    path = directory(out, "affine")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve,
                                                  "norms": module.norms})
    instances = [{"x": [1.0, 2.0, 3.0], "scale": 2.0}, {"x": [-1.0, 0.5, 0.0], "scale": 0.5}]
    result = module.serve(tf.constant([i["x"] for i in instances]),
                          tf.constant([i["scale"] for i in instances]))
    expect(path, instances, [{"total": float(result["total"][i].numpy()),
                              "y": result["y"][i].numpy().tolist()} for i in range(2)])
    rows = [i["x"] for i in instances]
    with open(os.path.join(path, "norms.json"), "w") as f:
        json.dump({"instances": rows,
                   "expected": module.norms(tf.constant(rows))["norm"].numpy().tolist()}, f)

    # The same module with no serving_default signature.
    tf.saved_model.save(module, directory(out, "no_default"), signatures={"affine": module.serve})

    # Keras' export(): one input, one output, bare values per instance.
    x, y = load("iris.csv")
    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(8, activation="relu"),
                                 tf.keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, verbose=0)
    path = directory(out, "keras_iris")
    model.export(path, verbose=False)
    rows = x[::15].astype(np.float32)
    expect(path, rows.tolist(), model.predict(rows, verbose=0).tolist())

    # A serving signature that parses tf.Example strings, sent as {"b64": ...}.
    class Parser(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples):
            features = tf.io.parse_example(examples, {
                "a": tf.io.FixedLenFeature([], tf.float32),
                "b": tf.io.FixedLenFeature([], tf.float32)})
            return {"sum": features["a"] * 3.0 + features["b"]}

    parser = Parser()
    path = directory(out, "example_parser")
    tf.saved_model.save(parser, path, signatures={"serving_default": parser.serve})
    examples = []
    for a, b in [(1.5, 2.0), (-4.0, 0.25)]:
        example = tf.train.Example(features=tf.train.Features(feature={
            "a": tf.train.Feature(float_list=tf.train.FloatList(value=[a])),
            "b": tf.train.Feature(float_list=tf.train.FloatList(value=[b]))}))
        examples.append(example.SerializeToString())
    result = parser.serve(tf.constant(examples))["sum"].numpy().tolist()
    expect(path, [{"b64": base64.b64encode(e).decode()} for e in examples], result)


if __name__ == "__main__":
    {"sklearn": sklearn, "xgboost": xgboost, "tensorflow": tensorflow}[sys.argv[1]](sys.argv[2])
