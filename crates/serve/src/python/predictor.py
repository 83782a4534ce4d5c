"""Kiln's framework worker: loads one model and predicts batches sent by the server.

Started as `python predictor.py FRAMEWORK MODEL_DIR [PREDICTION_CLASS]`. Frames in both directions are a decimal
length, a newline, and that many bytes of JSON. The first frame out is {"ready": {...}} (what the
model takes and returns) or {"error": "..."}; then each request {"instances": [...],
"signature": name|null} is answered by {"predictions": [...]} or {"error": "...", "index": i|null}
(an index when one instance is at fault). Anything the model prints goes to stderr: stdout
carries only frames.

The model classes (`FRAMEWORKS`) are also what converter.py loads models and predicts the check set with.
"""

import base64
import json
import math
import os
import pickle
import sys
import traceback

PROTOCOL = None


class InstanceError(Exception):
    def __init__(self, index, message):
        super().__init__(message)
        self.index = index


def send(message):
    data = json.dumps(message, allow_nan=False).encode()
    PROTOCOL.write(b"%d\n" % len(data))
    PROTOCOL.write(data)
    PROTOCOL.flush()


def receive():
    """The next request; one for rows ({"rows": [n, d], "dtype": ...}) is followed by a frame of their
    raw values, which become its instances as an n x d array."""
    header = sys.stdin.buffer.readline()
    if not header:
        return None
    request = json.loads(sys.stdin.buffer.read(int(header)))
    if "rows" in request:
        import numpy as np

        data = sys.stdin.buffer.read(int(sys.stdin.buffer.readline()))
        request["instances"] = np.frombuffer(data, dtype=request["dtype"]).reshape(request["rows"])
    return request


def plain(value):
    """Numpy and bytes outputs as JSON values (bytes that are not UTF-8 as {"b64": ...}, numbers
    that are not finite as null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if hasattr(value, "tolist"):
        return plain(value.tolist())
    return value


def unpickle(model_dir):
    for name in ("model.joblib", "model.pkl"):
        path = os.path.join(model_dir, name)
        if not os.path.exists(path):
            continue
        try:
            if name.endswith(".joblib"):
                import joblib

                return joblib.load(path)
            with open(path, "rb") as file:
                return pickle.load(file)
        except Exception as error:
            raise ValueError(
                "%s could not be unpickled (%s: %s)" % (name, type(error).__name__, error)
            ) from error
    return None


def rows(instances, width, dtype):
    """Feature rows as a matrix of `dtype`, naming the first instance that does not fit."""
    import numpy as np

    if isinstance(instances, np.ndarray):
        return instances.astype(dtype, copy=False)

    for index, instance in enumerate(instances):
        if not isinstance(instance, list):
            raise InstanceError(index, "expected a list of %s feature values" % (width or "the"))
        if width is not None and len(instance) != width:
            raise InstanceError(
                index, "expected %d feature values, got %d" % (width, len(instance))
            )
    try:
        return np.asarray(instances, dtype=dtype)
    except (TypeError, ValueError):
        for index, instance in enumerate(instances):
            try:
                np.asarray(instance, dtype=dtype)
            except (TypeError, ValueError) as error:
                raise InstanceError(index, "feature values must be numbers: %s" % error)
        raise


class ScikitLearn:
    def __init__(self, model_dir):
        self.model = unpickle(model_dir)
        if not hasattr(self.model, "predict"):
            raise ValueError(
                "the pickled object is a %s, which has no predict method"
                % type(self.model).__name__
            )
        import sklearn

        self.version = "scikit-learn " + sklearn.__version__
        self.width = getattr(self.model, "n_features_in_", None)
        self.columns = getattr(self.model, "feature_names_in_", None)

    def describe(self):
        return {"engine": self.version, "features": self.width, "outputs": {"predictions": self.output()}}

    def output(self):
        """What `predict` answers per row: a classifier's label (typed as its classes), else a number."""
        import numpy as np

        classes = getattr(self.model, "classes_", None)
        if classes is None:
            return {"dtype": "float64", "shape": [None]}
        kind = np.asarray(classes).dtype
        return {"dtype": "string" if kind.kind in "OUS" else kind.name, "shape": [None]}

    def predict(self, instances, signature):
        import numpy as np

        rows_of_numbers = isinstance(instances, np.ndarray) or all(
            isinstance(i, list) and all(isinstance(v, (int, float)) for v in i) for i in instances
        )
        if rows_of_numbers:
            frame = rows(instances, self.width, np.float64)
        elif self.columns is not None and all(isinstance(i, dict) for i in instances):
            import pandas

            columns = [str(column) for column in self.columns]
            for index, instance in enumerate(instances):
                missing = [column for column in columns if column not in instance]
                if missing:
                    raise InstanceError(index, "missing feature %s" % ", ".join(missing))
            frame = pandas.DataFrame(instances, columns=columns)
        else:
            # Pipelines that start with their own preprocessing (text, categories) take raw rows.
            frame = instances
        return plain(self.model.predict(frame))


class XgBoost:
    def __init__(self, model_dir):
        import xgboost

        self.xgboost = xgboost
        self.version = "xgboost " + xgboost.__version__
        for name in ("model.bst", "model.json", "model.ubj"):
            path = os.path.join(model_dir, name)
            if os.path.exists(path):
                self.booster = xgboost.Booster()
                self.booster.load_model(path)
                break
        else:
            model = unpickle(model_dir)
            if isinstance(model, xgboost.Booster):
                self.booster = model
            elif hasattr(model, "get_booster"):
                self.booster = model.get_booster()
            else:
                raise ValueError(
                    "the pickled object is a %s, not an XGBoost booster or estimator"
                    % type(model).__name__
                )

    def describe(self):
        import numpy as np

        # What `predict` answers per row (one probability, or one per class), from a row of zeros.
        width = self.booster.num_features()
        probe = self.booster.predict(self.xgboost.DMatrix(np.zeros((1, width), dtype=np.float32)))
        output = {"dtype": "float32", "shape": [None] + list(probe.shape[1:])}
        return {"engine": self.version, "features": width, "outputs": {"predictions": output}}

    def predict(self, instances, signature):
        import numpy as np

        matrix = self.xgboost.DMatrix(rows(instances, self.booster.num_features(), np.float32))
        return plain(self.booster.predict(matrix))


def decode(value):
    """Replaces {"b64": ...} by the bytes it encodes, at any depth."""
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            return base64.b64decode(value["b64"])
        return {key: decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode(item) for item in value]
    return value


class TensorFlow:
    def __init__(self, model_dir):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        threads = int(os.environ.get("OMP_NUM_THREADS", "0"))
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        self.tf = tf
        self.version = "tensorflow " + tf.__version__
        self.model = tf.saved_model.load(model_dir)
        self.signatures = dict(self.model.signatures)
        if "serving_default" not in self.signatures:
            raise ValueError(
                "the SavedModel has no serving_default signature; its signatures are %s"
                % (", ".join(sorted(self.signatures)) or "none")
            )

    def spec(self, name):
        function = self.signatures[name]
        inputs = function.structured_input_signature[1]
        outputs = function.structured_outputs
        tensor = lambda spec: {"dtype": spec.dtype.name, "shape": spec.shape.as_list()}
        return {
            "inputs": {key: tensor(value) for key, value in inputs.items()},
            "outputs": {key: tensor(value) for key, value in outputs.items()},
        }

    def describe(self):
        return {
            "engine": self.version,
            "signatures": {name: self.spec(name) for name in sorted(self.signatures)},
        }

    def function(self, signature):
        name = signature or "serving_default"
        if name not in self.signatures:
            raise LookupError(
                "the SavedModel has no signature %r; its signatures are %s"
                % (name, ", ".join(sorted(self.signatures)))
            )
        return self.signatures[name]

    def predict(self, instances, signature):
        import numpy as np

        tf = self.tf
        function = self.function(signature)
        inputs = function.structured_input_signature[1]
        names = sorted(inputs)
        if isinstance(instances, np.ndarray):
            (name,) = names
            return self.outputs(function(**{name: tf.constant(instances, dtype=inputs[name].dtype)}),
                                len(instances))
        columns = {name: [] for name in names}
        for index, instance in enumerate(instances):
            instance = decode(instance)
            if len(names) == 1 and not (isinstance(instance, dict) and names[0] in instance):
                instance = {names[0]: instance}
            if not isinstance(instance, dict):
                raise InstanceError(
                    index, "expected an object with the inputs %s" % ", ".join(names)
                )
            for name in names:
                if name not in instance:
                    raise InstanceError(index, "missing input %r" % name)
                spec = inputs[name]
                value = instance[name]
                shape = list(np.shape(value))
                expected = spec.shape.as_list()[1:]
                if len(shape) != len(expected) or any(
                    want is not None and got != want for got, want in zip(shape, expected)
                ):
                    raise InstanceError(
                        index,
                        "input %r must have shape %s per instance, got %s"
                        % (name, [d if d is not None else -1 for d in expected], shape),
                    )
                if spec.dtype == tf.string:
                    value = np.vectorize(
                        lambda item: item.encode() if isinstance(item, str) else item,
                        otypes=[object],
                    )(np.asarray(value, dtype=object)) if shape else (
                        value.encode() if isinstance(value, str) else value
                    )
                else:
                    try:
                        value = np.asarray(value, dtype=spec.dtype.as_numpy_dtype)
                    except (TypeError, ValueError) as error:
                        raise InstanceError(
                            index, "input %r must be %s: %s" % (name, spec.dtype.name, error)
                        )
                columns[name].append(value)
        feeds = {}
        for name in names:
            spec = inputs[name]
            if spec.dtype == tf.string:
                feeds[name] = tf.constant(np.array(columns[name], dtype=object), dtype=tf.string)
            else:
                feeds[name] = tf.constant(np.stack(columns[name]), dtype=spec.dtype)
        return self.outputs(function(**feeds), len(instances))

    def outputs(self, outputs, count):
        """One output: its values; several: an object per instance keyed by output name."""
        outputs = {key: value.numpy() for key, value in outputs.items()}
        if len(outputs) == 1:
            (only,) = outputs.values()
            return plain(list(only))
        keys = sorted(outputs)
        return [{key: plain(outputs[key][row]) for key in keys} for row in range(count)]


class Custom:
    """A custom prediction routine: `module.Class` with ML Engine's Predictor contract,
    `Class.from_path(model_dir)` and `predict(instances, **kwargs)`."""

    def __init__(self, model_dir, prediction_class):
        import importlib

        module_name, _, class_name = prediction_class.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ValueError(
                "predictionClass %s: module %s could not be imported (%s: %s); is it in packageUris?"
                % (prediction_class, module_name, type(error).__name__, error)
            ) from error
        predictor_class = getattr(module, class_name, None)
        if predictor_class is None:
            raise ValueError(
                "predictionClass %s: module %s has no %s" % (prediction_class, module_name, class_name)
            )
        if not hasattr(predictor_class, "from_path"):
            raise ValueError(
                "predictionClass %s has no from_path(model_dir) class method" % prediction_class
            )
        self.predictor = predictor_class.from_path(model_dir)
        self.name = prediction_class

    def describe(self):
        return {"engine": "custom prediction routine " + self.name}

    def predict(self, instances, signature):
        kwargs = {"signature_name": signature} if signature else {}
        return plain(list(self.predictor.predict(instances, **kwargs)))


FRAMEWORKS = {"SCIKIT_LEARN": ScikitLearn, "XGBOOST": XgBoost, "TENSORFLOW": TensorFlow}


def main():
    global PROTOCOL
    PROTOCOL = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    framework, model_dir = sys.argv[1], sys.argv[2]
    try:
        if framework == "CUSTOM":
            model = Custom(model_dir, sys.argv[3])
        else:
            model = FRAMEWORKS[framework](model_dir)
        send({"ready": model.describe()})
    except BaseException as error:
        traceback.print_exc()
        send({"error": "%s: %s" % (type(error).__name__, error)})
        return 1
    while True:
        request = receive()
        if request is None:
            return 0
        try:
            predictions = model.predict(request["instances"], request.get("signature"))
            send({"predictions": predictions})
        except InstanceError as error:
            send({"error": str(error), "index": error.index})
        except LookupError as error:
            send({"error": str(error).strip("'\""), "index": None})
        except Exception as error:
            traceback.print_exc()
            send({"error": "%s: %s" % (type(error).__name__, error), "index": None})


if __name__ == "__main__":
    sys.exit(main())
