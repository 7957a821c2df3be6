"""The Mini App's pages (SPEC §7); being built for issue 4."""

from flask import Blueprint

bp = Blueprint("pages", __name__)
