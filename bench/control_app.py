"""The control: a bare Flask app with one JSON endpoint.

It is served by gunicorn with exactly the same settings as the app under test, in the same run, so that the
ratio between the two measures what the application adds on top of Flask, gunicorn and the machine.
"""

from flask import Flask, Response, jsonify

app = Flask(__name__)


@app.get("/control")
def control() -> Response:
    """Return a small JSON object shaped like an account summary."""
    return jsonify({"id": 1, "username": "control"})
