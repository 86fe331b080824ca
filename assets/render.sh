#!/bin/sh
# Renders the PNGs in this folder from the SVG sources (make icons).
# needs: rsvg-convert (Debian: librsvg2-bin)
set -eu
cd "$(dirname "$0")"
state() { sed "s/STATE/$1/" icon.svg | rsvg-convert -w "$2" -h "$2" -o "$3"; }
state '#3fb950' 512 icon.png
state '#3fb950' 64 tray-ok.png
state '#e3a008' 64 tray-degraded.png
state '#8b949e' 64 tray-paused.png
rsvg-convert -w 64 -h 64 -o tray-template.png icon-template.svg
