"""A Flask app written as Flask users write them, served by Treadle's WSGI
interface in tests/wsgi/test_flask.py (and through asgiref's WsgiToAsgi in
tests/wsgi/test_asgiref_peer.py).

The tests copy this file into a temporary folder and serve it with
`treadle run flask_app:app --interface wsgi`, or build one in-process with
`create_app(folder)`. The folder holds `files/`, served by `send_file`.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from flask import Flask, Response, abort, jsonify, request, send_file, stream_with_context
from werkzeug.wsgi import wrap_file

HERE = Path(__file__).resolve().parent


def create_app(folder: Path) -> Flask:
    """The app, serving files from `folder`/files."""
    app = Flask(__name__)
    files = folder / "files"

    @app.get("/")
    def index() -> str:
        return "hello from flask"

    @app.get("/hello/<name>")
    def hello(name: str) -> str:
        return f"hello, {name}!"

    @app.route("/form", methods=["GET", "POST"])
    def form() -> Response | str:
        if request.method == "GET":
            return '<form method="post"><input name="name"><input name="colour"></form>'
        return jsonify(
            name=request.form["name"],
            colours=request.form.getlist("colour"),
            content_type=request.content_type,
        )

    @app.post("/json")
    def json_echo() -> Response:
        data = request.get_json()
        return jsonify(got=data, keys=sorted(data) if isinstance(data, dict) else None)

    @app.get("/search")
    def search() -> Response:
        return jsonify(
            q=request.args.get("q"),
            tags=request.args.getlist("tag"),
            path=request.path,
            script_root=request.script_root,
        )

    @app.get("/stream")
    def stream() -> Response:
        count = request.args.get("count", 5, type=int)

        def lines() -> Iterator[str]:
            for n in range(count):
                yield f"row {n}\n"

        return Response(stream_with_context(lines()), mimetype="text/plain")

    @app.get("/endless")
    def endless() -> Response:
        # An endless stream: the server must close it when the client goes.
        def rows() -> Iterator[bytes]:
            n = 0
            try:
                while True:
                    yield f"row {n}\n".encode() * 100
                    n += 1
            finally:
                with open(folder / "events.log", "a") as log:
                    log.write("endless stream closed\n")

        return Response(rows(), mimetype="text/plain")

    @app.post("/upload")
    def upload() -> Response:
        uploaded = request.files["file"]
        data = uploaded.read()
        return jsonify(
            filename=uploaded.filename,
            content_type=uploaded.content_type,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            comment=request.form.get("comment"),
        )

    @app.post("/digest")
    def digest() -> Response:
        hasher = hashlib.sha256()
        size = 0
        while chunk := request.stream.read(65536):
            hasher.update(chunk)
            size += len(chunk)
        return jsonify(size=size, sha256=hasher.hexdigest())

    @app.get("/missing/<int:item_id>")
    def missing(item_id: int) -> str:
        abort(404, description=f"item {item_id} is not here")

    @app.get("/boom")
    def boom() -> str:
        raise ValueError("an unhandled error in a Flask view")

    @app.get("/files/<name>")
    def download(name: str) -> Response:
        return send_file(files / name, max_age=0)

    @app.get("/attachment")
    def attachment() -> Response:
        return send_file(files / "report.bin", as_attachment=True, download_name="résumé.bin")

    @app.get("/head-of/<name>")
    def head_of(name: str) -> Response:
        # The first bytes of a file (a log's head, say) through
        # wsgi.file_wrapper, with the Content-Length that says how many.
        count = request.args.get("bytes", 1000, type=int)
        file = wrap_file(request.environ, open(files / name, "rb"))  # noqa: SIM115
        return Response(
            file,
            mimetype="application/octet-stream",
            headers={"Content-Length": str(count)},
            direct_passthrough=True,
        )

    @app.get("/broken-stream")
    def broken_stream() -> Response:
        def rows() -> Iterator[bytes]:
            yield b"the first row\n"
            yield b"the second row\n"
            raise RuntimeError("the stream broke half-way")

        return Response(rows(), mimetype="text/plain")

    @app.get("/cookies")
    def cookies() -> Response:
        response = jsonify(ok=True)
        response.set_cookie("session", "abc123", httponly=True)
        response.set_cookie("theme", "dark")
        return response

    @app.get("/redirect")
    def redirect_me() -> Response:
        return Response(status=302, headers={"Location": "/hello/redirected"})

    @app.get("/pid")
    def pid() -> str:
        return f"{os.getpid()} {threading.current_thread().name}"

    @app.get("/environ")
    @app.get("/environ/<path:rest>")
    def environ(rest: str = "") -> Response:
        keys = ("SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_PROTOCOL")
        return jsonify({key: request.environ.get(key) for key in keys})

    return app


app = create_app(HERE)
