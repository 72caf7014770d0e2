"""URL rules of the recipients pages."""

from flask import Blueprint

bp = Blueprint("recipients", __name__)
