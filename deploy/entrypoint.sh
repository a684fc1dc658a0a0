#!/bin/sh
# Run one Klaxon service's command line: `klaxon-service serve|migrate|provision|create-api-key`.
# SERVICE (set at build time) is the service's name; its Python package uses underscores.
set -eu
module="$(printf '%s' "${SERVICE:?SERVICE is not set}" | tr '-' '_')"
exec python -m "${module}" "$@"
