"""A Flask app served by Treadle: `treadle run examples.flask_app:app --interface wsgi`.

(Flask is not a dependency of Treadle: `pip install -e '.[examples]'`.)

- `GET  /`               a guestbook page with a form
- `POST /`               the form (urlencoded `name` and `message`): signs, then back to /
- `GET  /api/entries`    JSON: every entry
- `POST /api/entries`    JSON body `{"name": ..., "message": ...}`: signs (201)

Flask runs in Treadle's thread pool (`--wsgi-threads`), so the entries are
guarded by a lock.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, jsonify, redirect, render_template_string, request
from werkzeug.wrappers import Response

app = Flask(__name__)

ENTRIES: list[dict[str, str]] = []
LOCK = threading.Lock()

PAGE = """<!doctype html>
<title>Guestbook</title>
<h1>Guestbook</h1>
<form method="post">
  <input name="name" placeholder="name" required>
  <input name="message" placeholder="message" required>
  <button>Sign</button>
</form>
<ul>{% for entry in entries %}<li><b>{{ entry.name }}</b>: {{ entry.message }}</li>{% endfor %}</ul>
"""


def sign(name: str, message: str) -> dict[str, str]:
    entry = {"name": name.strip(), "message": message.strip()}
    with LOCK:
        ENTRIES.append(entry)
    return entry


@app.get("/")
def index() -> str:
    with LOCK:
        entries = list(ENTRIES)
    return render_template_string(PAGE, entries=entries)


@app.post("/")
def sign_form() -> Response:
    sign(request.form["name"], request.form["message"])
    return redirect("/", code=303)


@app.get("/api/entries")
def list_entries() -> Response:
    with LOCK:
        return jsonify(ENTRIES)


@app.post("/api/entries")
def sign_json() -> Any:
    data = request.get_json()
    if not isinstance(data, dict) or not data.get("name") or not data.get("message"):
        return jsonify(error="send a JSON object with a name and a message"), 400
    return jsonify(sign(str(data["name"]), str(data["message"]))), 201
