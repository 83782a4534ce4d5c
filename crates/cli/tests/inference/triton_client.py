"""Calls Kiln through Triton's own HTTP client (`tritonclient[http]`), unchanged, for the Open
Inference Protocol test. Prints one JSON object with what the server answered.

    python3 triton_client.py HOST:PORT/v1/projects/PROJECT REQUESTS.json

REQUESTS.json: {"census": [instances], "iris": [[4 floats], ...]}; each model is inferred twice,
with JSON tensors and with binary tensor data: census (a Kiln export), iris (a scikit-learn
pipeline served by scikit-learn) and iris_onnx (the same pipeline served converted to ONNX, which
reads the tensors itself).
"""
import json
import sys

import numpy as np
import tritonclient.http as http

url, requests = sys.argv[1], json.load(open(sys.argv[2]))
client = http.InferenceServerClient(url)
out = {
    "live": client.is_server_live(),
    "ready": client.is_server_ready(),
    "census_ready": client.is_model_ready("census", "v1"),
    "missing_ready": client.is_model_ready("missing"),
    "census_metadata": client.get_model_metadata("census"),
    "iris_metadata": client.get_model_metadata("iris"),
}


def as_list(array):
    return [item.decode() if isinstance(item, bytes) else item for item in array.tolist()]


for binary in (False, True):
    census = requests["census"]
    inputs = []
    for key in census[0]:
        values = [row[key] for row in census]
        if isinstance(values[0], str):
            tensor = http.InferInput(key, [len(values)], "BYTES")
            tensor.set_data_from_numpy(np.array(values, dtype=object), binary_data=binary)
        else:
            tensor = http.InferInput(key, [len(values)], "FP32")
            tensor.set_data_from_numpy(np.array(values, dtype=np.float32), binary_data=binary)
        inputs.append(tensor)
    result = client.infer("census", inputs, model_version="v1")
    response = result.get_response()
    out["census_binary" if binary else "census_json"] = {
        output["name"]: as_list(result.as_numpy(output["name"])) for output in response["outputs"]
    }

    rows = np.array(requests["iris"], dtype=np.float32)
    tensor = http.InferInput("instances", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    wanted = [http.InferRequestedOutput("predictions", binary_data=binary)]
    result = client.infer("iris", [tensor], outputs=wanted)
    out["iris_binary" if binary else "iris_json"] = result.as_numpy("predictions").tolist()

    tensor = http.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    wanted = [http.InferRequestedOutput("output_label", binary_data=binary)]
    result = client.infer("iris_onnx", [tensor], outputs=wanted)
    out["iris_onnx_binary" if binary else "iris_onnx_json"] = result.as_numpy("output_label").tolist()

print(json.dumps(out))
