#!/bin/sh
# Renders the PNGs in this folder from the SVG sources (make icons), and the
# app icon at the sizes the installers want (icons/): the hicolor theme's
# sizes and a scalable SVG for Linux, a multi-size .ico for the Windows
# installer. They are committed, so packaging needs neither tool.
# needs: rsvg-convert (Debian: librsvg2-bin), convert (Debian: imagemagick)
set -eu
cd "$(dirname "$0")"
state() { sed "s/STATE/$1/" icon.svg | rsvg-convert -w "$2" -h "$2" -o "$3"; }
state '#3fb950' 512 icon.png
state '#3fb950' 64 tray-ok.png
state '#e3a008' 64 tray-degraded.png
state '#8b949e' 64 tray-paused.png
rsvg-convert -w 64 -h 64 -o tray-template.png icon-template.svg

# The app icon: green light. 512 is icon.png itself.
mkdir -p icons
for size in 16 22 24 32 48 64 128 256; do
  state '#3fb950' "$size" "icons/gatehouse-$size.png"
done
sed "s/STATE/#3fb950/" icon.svg >icons/gatehouse.svg
# Windows picks the size it needs from the .ico (16 to 256; the 256 one is
# stored as PNG). -strip keeps the file the same from run to run.
convert icons/gatehouse-16.png icons/gatehouse-24.png icons/gatehouse-32.png \
  icons/gatehouse-48.png icons/gatehouse-64.png icons/gatehouse-256.png -strip icons/gatehouse.ico
