"""Downloads against a local HTTP server on 127.0.0.1: verified, mirror by mirror, never partial."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from trainkit.data.download import fetch
from trainkit.errors import DataError
from trainkit.plugins.datasets import MNIST

from .conftest import write_dataset


class Handler(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    hits: list[str] = []
    release = threading.Event()

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.hits.append(self.path)
        mode, _, name = self.path.strip("/").partition("/")
        body = self.files.get(name)
        if body is None or mode == "missing":
            self.send_error(404)
            return
        if mode == "corrupt":
            body = body[:-10] + b"x" * 10
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "truncated":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if mode == "stall":  # the first bytes, then nothing until the test ends, then the rest:
            half = len(body) // 2  # a client without a read timeout would get the file
            self.wfile.write(body[:half])
            self.wfile.flush()
            self.release.wait(10)
            body = body[half:]
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # do not wait for the stalled handler


@pytest.fixture
def server(tmp_path_factory):
    folder = write_dataset(tmp_path_factory.mktemp("served"), n_train=64, n_test=32)
    Handler.files = {p.name: p.read_bytes() for p in folder.iterdir()}
    Handler.hits = []
    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    Handler.release.clear()
    yield f"http://127.0.0.1:{httpd.server_port}", Handler
    Handler.release.set()
    httpd.shutdown()
    httpd.server_close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


NAME = "train-labels-idx1-ubyte.gz"


def test_download_verifies_and_caches(server, tmp_path):
    url, handler = server
    path = fetch(NAME, sha(handler.files[NAME]), [f"{url}/good"], tmp_path)
    assert path.read_bytes() == handler.files[NAME]
    fetch(NAME, sha(handler.files[NAME]), [f"{url}/good"], tmp_path)
    assert handler.hits == [f"/good/{NAME}"]  # the second call used the cache


@pytest.mark.parametrize("bad", ["corrupt", "truncated", "missing"])
def test_a_bad_mirror_is_discarded_and_the_next_is_tried(server, tmp_path, bad):
    url, handler = server
    path = fetch(NAME, sha(handler.files[NAME]), [f"{url}/{bad}", f"{url}/good"], tmp_path)
    assert path.read_bytes() == handler.files[NAME]
    assert handler.hits == [f"/{bad}/{NAME}", f"/good/{NAME}"]
    assert [p.name for p in tmp_path.iterdir()] == [NAME]  # no partial file left behind


def test_a_stalled_mirror_times_out(server, tmp_path):
    url, handler = server
    path = fetch(NAME, sha(handler.files[NAME]), [f"{url}/stall", f"{url}/good"], tmp_path,
                 timeout=0.5)
    assert path.read_bytes() == handler.files[NAME]
    # it gave up on the stalled mirror (which would have sent the whole file in the end) and
    # took the next one
    assert handler.hits == [f"/stall/{NAME}", f"/good/{NAME}"]


def test_when_every_mirror_fails_one_line_lists_them_and_suggests_data_dir(server, tmp_path):
    url, handler = server
    with pytest.raises(DataError) as info:
        fetch(NAME, sha(handler.files[NAME]), [f"{url}/corrupt", f"{url}/truncated"], tmp_path)
    message = str(info.value)
    assert "\n" not in message and "--data-dir" in message
    assert f"{url}/corrupt/{NAME} (SHA-256 mismatch" in message
    assert f"{url}/truncated/{NAME}" in message
    assert not (tmp_path / NAME).exists()
    assert not list(tmp_path.iterdir())


def test_a_corrupted_cached_file_is_downloaded_again(server, tmp_path):
    url, handler = server
    (tmp_path / NAME).write_bytes(b"garbage")
    path = fetch(NAME, sha(handler.files[NAME]), [f"{url}/good"], tmp_path)
    assert path.read_bytes() == handler.files[NAME]


def test_the_dataset_downloads_all_four_files_on_first_use(server, monkeypatch, tmp_path):
    url, handler = server
    monkeypatch.setattr(MNIST, "mirrors", (f"{url}/missing", f"{url}/good"))
    monkeypatch.setattr(MNIST, "sha256", {name: sha(data) for name, data in handler.files.items()})
    splits = MNIST().load()
    assert splits.train_images.shape == (64, 28, 28) and splits.test_labels.shape == (32,)
    assert splits.train_images.dtype == np.uint8
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(handler.files)


def test_the_real_mnist_checksums_match_shared_files(mnist_dir):
    for name, digest in MNIST.sha256.items():
        assert sha((mnist_dir / name).read_bytes()) == digest, name
