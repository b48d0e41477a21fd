#!/bin/sh
# Regenerates the autotools build (configure, Makefile.in). Run once after a clone.
set -e
cd "$(dirname "$0")"
mkdir -p m4 build-aux
autoreconf --install --force
