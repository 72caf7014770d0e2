"""URL rules of the cases pages."""

from flask import Blueprint

bp = Blueprint("cases", __name__)
