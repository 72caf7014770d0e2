"""URL rules of the exports pages."""

from flask import Blueprint

bp = Blueprint("exports", __name__)
