"""Keys, rate limits, usage, hot swaps and batching against real server processes."""

import asyncio
import json
import threading
import time

import httpx
import pytest
import tritonclient.http as triton

from .artifacts import linear_artifact
from .conftest import Server
from .serving import churn_store, wait_until

LIN = {"rows": [{"a": 2.0, "b": 1.0}]}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    """A server whose store has keys: an admin, a predict key for 'lin' only, a 2/s key."""
    import os

    from modelport.serve.keys import KeyStore

    home = tmp_path_factory.mktemp("keys") / "home"
    store = churn_store(home)
    env = {**os.environ, "MODELPORT_HOME": str(home)}

    def key(name, **options):  # what `modelport keys create --json` prints (docs test the CLI)
        info, secret = KeyStore(store.engine).create(name, **options)
        return {"id": info.id, "name": info.name, "scope": info.scope, "key": secret}

    keys = {
        "admin": key("ops", scope="admin"),
        "lin": key("app", models=["lin"]),
        "slow": key("trial", rate=2.0),
        "doomed": key("leaked"),
    }
    server = Server(home)
    yield server, keys, env
    server.stop()


def _auth(key):
    return {"Authorization": f"Bearer {key['key']}"}


def test_keys_are_required_once_they_exist(keyed):
    server, keys, _ = keyed
    missing = httpx.post(f"{server.url}/api/v1/models/lin/predict", json=LIN)
    assert missing.status_code == 401 and "needs an API key" in missing.json()["error"]
    wrong = httpx.post(
        f"{server.url}/api/v1/models/lin/predict",
        json=LIN,
        headers={"Authorization": "Bearer mp_nope_nope"},
    )
    assert wrong.status_code == 401 and "not valid" in wrong.json()["error"]
    ok = httpx.post(f"{server.url}/api/v1/models/lin/predict", json=LIN, headers=_auth(keys["lin"]))
    assert ok.status_code == 200 and ok.json()["predictions"] == [3.0]
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200  # probes need no key


def test_scope_and_model_limits(keyed):
    server, keys, _ = keyed
    other_model = httpx.get(f"{server.url}/v2/models/churn", headers=_auth(keys["lin"]))
    assert (
        other_model.status_code == 403
        and "may not use model 'churn'" in other_model.json()["error"]
    )
    usage = httpx.get(f"{server.url}/api/v1/usage", headers=_auth(keys["lin"]))
    assert usage.status_code == 403 and "scope 'predict'" in usage.json()["error"]


def test_tritonclient_sends_the_key_as_a_header(keyed):
    server, keys, _ = keyed
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    headers = _auth(keys["lin"])
    assert client.is_model_ready("lin", headers=headers)
    assert not client.is_model_ready("lin")
    tensors = []
    for name in ("a", "b"):
        tensor = triton.InferInput(name, [1, 1], "FP32")
        tensor.set_data_from_numpy(__import__("numpy").array([[2.0]], dtype="float32"))
        tensors.append(tensor)
    assert client.infer("lin", tensors, headers=headers).as_numpy("value").tolist() == [4.0]


def test_rate_limit_answers_429_with_retry_after(keyed):
    server, keys, _ = keyed
    url, headers = f"{server.url}/api/v1/models/lin/predict", _auth(keys["slow"])
    first = [httpx.post(url, json=LIN, headers=headers).status_code for _ in range(2)]
    assert first == [200, 200]  # a full bucket holds two requests, however slow they were

    async def burst():
        async with httpx.AsyncClient(timeout=60) as http:
            return await asyncio.gather(
                *(http.post(url, json=LIN, headers=headers) for _ in range(20))
            )

    # 20 requests at once: all of them pass only if the server took 9 s to see them (2/s)
    responses = asyncio.run(burst())
    statuses = {r.status_code for r in responses}
    assert 429 in statuses and statuses <= {200, 429}, statuses
    for response in (r for r in responses if r.status_code == 429):
        assert int(response.headers["retry-after"]) >= 1
        assert "limited to 2 requests per second" in response.json()["error"]
    time.sleep(1.1)  # a refused request takes no token: a second refills 2 of them
    assert httpx.post(url, json=LIN, headers=headers).status_code == 200


def test_revoked_key_is_refused_within_a_poll(keyed):
    import subprocess

    from .conftest import MODELPORT

    server, keys, env = keyed
    url = f"{server.url}/api/v1/models/lin/predict"
    assert httpx.post(url, json=LIN, headers=_auth(keys["doomed"])).status_code == 200
    subprocess.run([str(MODELPORT), "keys", "revoke", keys["doomed"]["id"]], env=env, check=True)
    deadline = time.monotonic() + 30
    while httpx.post(url, json=LIN, headers=_auth(keys["doomed"])).status_code != 401:
        assert time.monotonic() < deadline, "revoked key still accepted after 30 s"
        time.sleep(0.1)
    listed = subprocess.run(
        [str(MODELPORT), "keys", "list", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert keys["doomed"]["key"] not in listed and '"revoked": null' in listed


def test_usage_totals_and_cost(keyed):
    import subprocess

    from .conftest import MODELPORT

    server, keys, env = keyed
    admin = _auth(keys["admin"])
    for _ in range(5):
        httpx.post(
            f"{server.url}/api/v1/models/churn/predict",
            headers=admin,
            json={"rows": [{"age": 30, "monthly fee": 20, "plan": "plus", "region": "x"}] * 3},
        )
    httpx.post(f"{server.url}/api/v1/models/churn/predict", headers=admin, json={"rows": [{}]})
    report = httpx.get(f"{server.url}/api/v1/usage?key=ops", headers=admin).json()
    churn = next(u for u in report["usage"] if u["model"] == "churn")
    assert (churn["requests"], churn["rows"], churn["errors"]) == (6, 15, 1)
    assert churn["cost"] == pytest.approx(6 * report["price_per_1000"] / 1000)
    assert churn["key_name"] == "ops" and churn["compute_seconds"] > 0
    cli = json.loads(
        subprocess.run(
            [str(MODELPORT), "usage", "--key", "ops", "--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert next(u for u in cli["usage"] if u["model"] == "churn")["requests"] == 6
    bad = httpx.get(f"{server.url}/api/v1/usage?since=yesterday", headers=admin)
    assert bad.status_code == 400


def test_refuses_a_public_address_without_keys(modelport):
    result = modelport("serve", "--host", "0.0.0.0", "--port", "1", check=False)
    assert (
        result.returncode == 1 and "Refusing to serve on 0.0.0.0 without API keys" in result.stderr
    )


@pytest.fixture(scope="module")
def swappable(tmp_path_factory):
    """A keyless server; each test swaps versions of a model of its own, which it registers."""
    from modelport.config import Settings
    from modelport.store import Store

    home = tmp_path_factory.mktemp("swap") / "home"
    store = Store(Settings(home=home))
    server = Server(home)
    yield server, store
    server.stop()


def test_hot_swap_under_load_drops_nothing(swappable):
    server, store = swappable
    store.register(linear_artifact("swap", scale=1.0), name="swap", aliases=("production",))
    answers, failures, stop = [], [], threading.Event()

    def client():
        with httpx.Client(timeout=60) as http:  # a slow answer is not a dropped one
            while not stop.is_set():
                response = http.post(f"{server.url}/api/v1/models/swap/predict", json=LIN)
                if response.status_code != 200:
                    failures.append(response.text)
                else:
                    answers.append(response.json()["version"])

    thread = threading.Thread(target=client)
    thread.start()
    wait_until(lambda: answers, "no answer from the server")
    store.register(linear_artifact("swap", scale=5.0), name="swap")
    assert set(answers) == {1}  # a new version alone does not move production
    import os
    import subprocess

    from .conftest import MODELPORT

    subprocess.run(
        [str(MODELPORT), "deploy", "swap:2"],
        check=True,
        capture_output=True,
        env={**os.environ, "MODELPORT_HOME": str(store.settings.home)},
    )
    wait_until(lambda: answers and answers[-1] == 2, "the server did not switch to version 2")
    switched = len(answers)
    wait_until(lambda: len(answers) >= switched + 10, "no answers after the switch")
    stop.set()
    thread.join()
    assert failures == []
    switch = answers.index(2)
    assert set(answers[:switch]) == {1} and set(answers[switch:]) == {2}
    assert httpx.post(f"{server.url}/api/v1/models/swap/predict", json=LIN).json()[
        "predictions"
    ] == [11.0]


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(swappable):
    from modelport.artifact import ModelArtifact

    server, store = swappable
    store.register(linear_artifact("fragile"), name="fragile", aliases=("production",))
    url = f"{server.url}/api/v1/models/fragile/predict"
    assert httpx.post(url, json=LIN).json()["version"] == 1
    good = linear_artifact("fragile")
    broken = ModelArtifact.create(
        b"not an onnx graph",
        **{k: getattr(good.manifest, k) for k in ("name", "task", "inputs", "outputs")},
    )
    store.register(broken, name="fragile", aliases=("production",))
    failed_once = 'modelport_model_load_failures_total{model="fragile"} 1.0'
    wait_until(lambda: failed_once in httpx.get(f"{server.url}/metrics").text, "no load failure")
    for _ in range(5):
        response = httpx.post(url, json=LIN)
        assert response.status_code == 200 and response.json()["version"] == 1
    assert failed_once in httpx.get(f"{server.url}/metrics").text  # not retried per request
    direct = httpx.post(f"{server.url}/api/v1/models/fragile:2/predict", json=LIN)
    assert direct.status_code == 503 and "cannot be loaded" in direct.json()["error"]


def test_concurrent_requests_are_batched_and_answered_correctly(tmp_path):
    """With batching forced on (a 40 µs model runs inline otherwise), 300 concurrent requests
    share onnxruntime calls and each gets its own answer back."""
    from modelport.config import Settings
    from modelport.store import Store

    home = tmp_path / "home"
    Store(Settings(home=home)).register(linear_artifact("lin"), name="lin")
    server = Server(home, MODELPORT_BATCH_INLINE_BELOW_MS="0", MODELPORT_BATCH_MAX_WAIT_MS="5")
    try:
        _burst_and_check(server)
    finally:
        server.stop()


def _burst_and_check(server):
    async def burst():
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as http:
            requests = [
                http.post(
                    f"{server.url}/api/v1/models/lin/predict", json={"rows": [{"a": i, "b": 0.5}]}
                )
                for i in range(300)
            ]
            return await asyncio.gather(*requests)

    responses = asyncio.run(burst())
    assert [r.json()["predictions"] for r in responses] == [[i + 0.5] for i in range(300)]
    metrics = httpx.get(f"{server.url}/metrics").text
    calls = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith('modelport_batch_rows_count{model="lin"}')
    )
    assert calls < 300  # some requests shared an onnxruntime call


def _loaded(server) -> float:
    metrics = httpx.get(f"{server.url}/metrics").text
    return next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("modelport_loaded_models ")
    )


def test_eager_loading_and_unloading_idle_models(tmp_path):
    from modelport.config import Settings
    from modelport.store import Store

    home = tmp_path / "home"
    store = Store(Settings(home=home))
    for name in ("a", "b"):
        store.register(linear_artifact(name), name=name)
    server = Server(home, "--load", "eager", MODELPORT_UNLOAD_AFTER="0.5")
    try:
        # the log, not the gauge: on a slow machine the idle models may be gone by the time
        # a /metrics request is answered
        log = server.log.read_text()
        ready = log.index("Application startup complete")
        assert all(0 <= log.find(f"serve loaded model {n}:1") < ready for n in "ab"), log
        wait_until(lambda: _loaded(server) == 0, "idle models were not unloaded")
        response = httpx.post(f"{server.url}/api/v1/models/a/predict", json=LIN)
        assert response.status_code == 200 and response.json()["predictions"] == [3.0]
        log = server.log.read_text()  # loaded again on demand, and only 'a'
        assert (log.count("serve loaded model a:1"), log.count("serve loaded model b:1")) == (2, 1)
    finally:
        server.stop()


def test_revoking_the_last_key_does_not_open_the_server(tmp_path):
    from modelport.config import Settings
    from modelport.serve.keys import KeyStore
    from modelport.store import Store

    home = tmp_path / "home"
    store = Store(Settings(home=home))
    store.register(linear_artifact("lin"), name="lin")
    keys = KeyStore(store.engine)
    info, secret = keys.create("only")
    server = Server(home)
    try:
        url, auth = f"{server.url}/api/v1/models/lin/predict", {"Authorization": f"Bearer {secret}"}
        assert httpx.post(url, json=LIN, headers=auth).status_code == 200
        keys.revoke(info.id)
        # once the server refuses the key it has re-read the key table
        wait_until(
            lambda: httpx.post(url, json=LIN, headers=auth).status_code == 401, "the key works"
        )
        response = httpx.post(url, json=LIN)
        assert response.status_code == 401 and "needs an API key" in response.json()["error"]
    finally:
        server.stop()
