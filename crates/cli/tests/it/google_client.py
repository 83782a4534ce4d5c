"""Google's own client for ML Engine, `google-api-python-client`, against a live Kiln.

Builds the `ml` v1 service from the discovery document the client ships (`static_discovery=True`),
points it at Kiln with a Kiln token as the bearer credential, and calls every method of the
document as a user would, asserting on each answer; then the flows gcloud builds from them (paging
through 250 jobs, `updateMask`, an `etag` conflict on `setIamPolicy`) and the refusals (an unknown
field, a wrong `updateMask` path, another project's operation). Ends naming any method of the
document it did not call, so a method a newer client release adds fails the suite until it is
served. Run by `it::google_client` with:
    KILN_URL, KILN_TOKEN, KILN_MODEL_URI (an exported census model), KILN_INSTANCES (JSON list)
"""
import json
import os
import sys
import time

try:
    from google.oauth2.credentials import Credentials
    from googleapiclient import discovery, discovery_cache
    from googleapiclient.errors import HttpError
except ImportError:
    sys.exit("google-api-python-client is not installed: pip install google-api-python-client")

URL = os.environ["KILN_URL"].rstrip("/") + "/"
PROJECT = "projects/conformance"
OTHER = "projects/elsewhere"
LOCATION = f"{PROJECT}/locations/us-central1"
INSTANCES = json.loads(os.environ["KILN_INSTANCES"])

DOCUMENT = json.loads(discovery_cache.get_static_doc("ml", "v1"))
ml = discovery.build("ml", "v1", credentials=Credentials(os.environ["KILN_TOKEN"]),
                     static_discovery=True, client_options={"api_endpoint": URL})
called = set()


def run(request):
    """Executes a request the client built, recording its method."""
    called.add(request.methodId)
    return request.execute()


def refused(request, status, *words):
    """Executes a request that must fail with `status`, its message naming each of `words`."""
    called.add(request.methodId)
    try:
        answer = request.execute()
    except HttpError as error:
        message = json.loads(error.content)["error"]["message"]
        assert error.resp.status == status, (request.methodId, error.resp.status, message)
        for word in words:
            assert word in message, (request.methodId, word, message)
        return message
    raise AssertionError(f"{request.methodId} answered {answer}, not {status}")


def finished(operation):
    """Waits for a model or version operation to end; the operation as it ended."""
    for _ in range(600):
        operation = run(ml.projects().operations().get(name=operation["name"]))
        if operation.get("done"):
            assert "error" not in operation, operation
            return operation
        time.sleep(0.05)
    raise AssertionError(f"{operation['name']} never ended")


def methods(resource):
    """Every method id of the discovery document."""
    for name, child in resource.get("resources", {}).items():
        for method in child.get("methods", {}).values():
            yield method["id"]
        yield from methods(child)


projects = ml.projects()

# The project and its locations.
config = run(projects.getConfig(name=PROJECT))
assert "@" in config["serviceAccount"], config
names, token = [], None
while True:
    page = run(projects.locations().list(parent=PROJECT, pageSize=5, pageToken=token))
    names += [location["name"] for location in page["locations"]]
    token = page.get("nextPageToken")
    if not token:
        break
assert LOCATION in names and len(names) == len(set(names)) > 5, names
location = run(projects.locations().get(name=LOCATION))
kinds = {capability["type"] for capability in location["capabilities"]}
assert kinds == {"TRAINING", "BATCH_PREDICTION", "ONLINE_PREDICTION"}, location
refused(projects.locations().get(name=f"{PROJECT}/locations/mars-north1"), 404, "mars-north1")

# A model, its version, predictions and explanations.
models = projects.models()
model = run(models.create(parent=PROJECT, body={
    "name": "census", "description": "Census income", "regions": ["us-central1"],
    "labels": {"team": "conformance"}}))
assert model["name"] == f"{PROJECT}/models/census", model
refused(models.create(parent=PROJECT, body={"name": "other", "colour": "blue"}), 400, "colour")
assert run(models.get(name=model["name"]))["description"] == "Census income"
assert [m["name"] for m in run(models.list(parent=PROJECT))["models"]] == [model["name"]]
patched = finished(run(models.patch(name=model["name"], updateMask="description",
                                    body={"description": "Adult census income"})))
assert run(models.get(name=model["name"]))["description"] == "Adult census income", patched
refused(models.patch(name=model["name"], updateMask="regions", body={"regions": ["europe-west1"]}),
        400, "regions")

versions = models.versions()
operation = run(versions.create(parent=model["name"], body={
    "name": "v1", "deploymentUri": os.environ["KILN_MODEL_URI"], "description": "first"}))
version_name = f"{model['name']}/versions/v1"
assert finished(operation)["response"]["name"] == version_name
version = run(versions.get(name=version_name))
assert version["state"] == "READY" and version["isDefault"], version
assert [v["name"] for v in run(versions.list(parent=model["name"]))["versions"]] == [version_name]
finished(run(versions.patch(name=version_name, updateMask="description",
                            body={"description": "the first"})))
assert run(versions.get(name=version_name))["description"] == "the first"
assert run(versions.setDefault(name=version_name, body={}))["isDefault"]

predictions = run(projects.predict(name=model["name"], body={"instances": INSTANCES}))
assert len(predictions["predictions"]) == len(INSTANCES), predictions
assert set(predictions["predictions"][0]) >= {"classes", "probabilities"}, predictions
explained = run(projects.explain(name=version_name, body={"instances": INSTANCES[:1]}))
assert len(explained["explanations"]) == 1, explained

# Policies: read, change with the etag read, a stale etag refused, permissions tested.
policy = run(models.getIamPolicy(resource=model["name"]))
bindings = policy.get("bindings", []) + [
    {"role": "roles/ml.modelUser", "members": ["serviceAccount:reader@conformance"]}]
changed = run(models.setIamPolicy(resource=model["name"],
                                  body={"policy": {"bindings": bindings, "etag": policy["etag"]}}))
assert changed["etag"] != policy["etag"], changed
refused(models.setIamPolicy(resource=model["name"],
                            body={"policy": {"bindings": bindings, "etag": policy["etag"]}}), 409)
held = run(models.testIamPermissions(resource=model["name"],
                                     body={"permissions": ["ml.models.get", "ml.models.delete"]}))
assert sorted(held["permissions"]) == ["ml.models.delete", "ml.models.get"], held

# Jobs: one that runs, its labels patched, its policy, cancelled; then 250 paged through.
jobs = projects.jobs()
job = run(jobs.create(parent=PROJECT, body={
    "jobId": "sleeper", "labels": {"kind": "conformance"},
    "trainingInput": {"scaleTier": "BASIC", "region": "us-central1",
                      "masterConfig": {"containerCommand": ["sleep", "600"]}}}))
assert job["state"] in ("QUEUED", "PREPARING", "RUNNING"), job
job_name = f"{PROJECT}/jobs/sleeper"
# The etag changes with the state: patch once the job has settled into RUNNING.
deadline = time.time() + 60
job = run(jobs.get(name=job_name))
while job["state"] != "RUNNING" and time.time() < deadline:
    time.sleep(0.1)
    job = run(jobs.get(name=job_name))
assert job["state"] == "RUNNING", job
relabelled = run(jobs.patch(name=job_name, updateMask="labels",
                            body={"labels": {"kind": "patched"}, "etag": job["etag"]}))
assert relabelled["labels"] == {"kind": "patched"}, relabelled
refused(jobs.patch(name=job_name, updateMask="trainingInput", body={"trainingInput": {}}),
        400, "trainingInput")
job_policy = run(jobs.getIamPolicy(resource=job_name))
run(jobs.setIamPolicy(resource=job_name, body={"policy": {
    "bindings": job_policy.get("bindings", []), "etag": job_policy["etag"]}}))
assert run(jobs.testIamPermissions(resource=job_name,
                                   body={"permissions": ["ml.jobs.cancel"]}))["permissions"]
run(jobs.cancel(name=job_name, body={}))
for _ in range(600):
    if run(jobs.get(name=job_name))["state"] == "CANCELLED":
        break
    time.sleep(0.05)
else:
    raise AssertionError("the job was never cancelled")
for index in range(250):
    run(jobs.create(parent=PROJECT, body={
        "jobId": f"paged_{index:03}",
        "trainingInput": {"masterConfig": {"containerCommand": ["true"]}}}))
listed, token, pages = [], None, 0
while True:
    page = run(jobs.list(parent=PROJECT, pageSize=100, pageToken=token))
    listed += [j["jobId"] for j in page["jobs"]]
    pages += 1
    token = page.get("nextPageToken")
    if not token:
        break
assert pages == 3 and len(listed) == 251 == len(set(listed)), (pages, len(listed))
filtered = run(jobs.list(parent=PROJECT, filter='labels.kind="patched"'))
assert [j["jobId"] for j in filtered["jobs"]] == ["sleeper"], filtered
listed, token = [], None
while True:
    page = run(jobs.list(parent=PROJECT, pageSize=30, pageToken=token, filter="jobId:paged_1*"))
    listed += [j["jobId"] for j in page["jobs"]]
    token = page.get("nextPageToken")
    if not token:
        break
assert listed == [f"paged_{index}" for index in range(100, 200)], listed
assert run(jobs.list(parent=PROJECT, filter="jobId:nothing*")).get("jobs", []) == []
refused(jobs.list(parent=PROJECT, pageToken="bm90LWEtam9i"), 400, "pageToken")

# Operations of the project: listed, read, cancelled; another project's is not found.
operations = projects.operations()
listed = run(operations.list(name=PROJECT))["operations"]
assert operation["name"] in [o["name"] for o in listed], listed
assert run(operations.get(name=operation["name"]))["done"]
assert run(operations.cancel(name=operation["name"])) == {}
foreign = operation["name"].replace(PROJECT, OTHER)
refused(operations.get(name=foreign), 404)

# A study: trials suggested (an operation kept under the location), measured, stopped early or
# not, completed, created by hand, stopped, listed, the best found, deleted.
studies = projects.locations().studies()
study = run(studies.create(parent=LOCATION, studyId="quadratic", body={"studyConfig": {
    "metrics": [{"metric": "loss", "goal": "MINIMIZE"}],
    "parameters": [{"parameter": "x", "type": "DOUBLE",
                    "doubleValueSpec": {"minValue": -5, "maxValue": 5}}]}}))
assert study["name"] == f"{LOCATION}/studies/quadratic", study
assert run(studies.get(name=study["name"]))["state"] == "ACTIVE"
assert [s["name"] for s in run(studies.list(parent=LOCATION))["studies"]] == [study["name"]]
trials = studies.trials()
suggestion = run(trials.suggest(parent=study["name"], body={"suggestionCount": 2, "clientId": "c1"}))
kept = run(projects.locations().operations().get(name=suggestion["name"]))
assert kept == suggestion and kept["done"], (kept, suggestion)
assert run(projects.locations().operations().cancel(name=suggestion["name"])) == {}
refused(projects.locations().operations().get(name=suggestion["name"].replace(PROJECT, OTHER)), 404)
first, second = suggestion["response"]["trials"]
x = first["parameters"][0]["floatValue"]
measured = run(trials.addMeasurement(name=first["name"], body={"measurement": {
    "stepCount": "1", "metrics": [{"metric": "loss", "value": (x - 1) ** 2}]}}))
assert measured["measurements"], measured
stopping = run(trials.checkEarlyStoppingState(name=first["name"]))
assert run(projects.locations().operations().get(name=stopping["name"]))["done"]
assert stopping["done"] and stopping["response"]["@type"].endswith(
    "CheckTrialEarlyStoppingStateResponse"), stopping
assert run(trials.complete(name=first["name"], body={}))["state"] == "COMPLETED"
assert run(trials.stop(name=second["name"]))["state"] == "STOPPING"
by_hand = run(trials.create(parent=study["name"], body={
    "parameters": [{"parameter": "x", "floatValue": 0.5}]}))
assert run(trials.get(name=by_hand["name"]))["parameters"][0]["floatValue"] == 0.5
assert len(run(trials.list(parent=study["name"]))["trials"]) == 3
optimal = run(trials.listOptimalTrials(parent=study["name"], body={}))
assert [t["name"] for t in optimal["trials"]] == [first["name"]], optimal
assert run(trials.delete(name=by_hand["name"])) == {}
assert run(studies.delete(name=study["name"])) == {}

# The version and model go.
finished(run(versions.delete(name=version_name)))
finished(run(models.delete(name=model["name"])))
refused(models.get(name=model["name"]), 404)

every = set(methods(DOCUMENT))
missing = sorted(every - called)
assert not missing, f"methods of the discovery document not called: {missing}"
print(f"{len(called)} of the {len(every)} methods of ml v1 (revision {DOCUMENT['revision']}) "
      "answered as the document says")
