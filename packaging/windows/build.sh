#!/usr/bin/env bash
# make package-windows: gatehouse.exe cross-compiled with Debian's
# MinGW-w64 (a GUI program: no console window; the icon, version
# information and manifest built in by `fyne package -os windows`), then a
# per-user installer made by NSIS from packaging/windows/gatehouse.nsi, into
# dist/gatehouse-VERSION-windows-amd64-setup.exe. Needs what
# scripts/deps.sh package-windows installs.
source "$(dirname "$0")/../lib.sh"
keep_tree

stage=$DIST/windows
rm -rf "$stage"
mkdir -p "$stage"
setup=$DIST/gatehouse-$VERSION-windows-amd64-setup.exe
rm -f "$DIST"/gatehouse-*-windows-*-setup.exe

# fyne builds in the source folder: it writes fyne.syso (icon, version
# information, manifest) and fyne_metadata_init.go there for the build and
# removes them (keep_tree removes them too if the build is interrupted), and
# leaves Gatehouse.exe. Release builds add -H=windowsgui -s -w and -trimpath.
# Debian's MinGW needs libssp for the _FORTIFY_SOURCE fyne's release C
# flags ask for. The 256-pixel PNG becomes the executable's icon (fyne
# stores the one image it is given; Windows scales it down).
fyne=$(fyne_cli)
say "building gatehouse.exe $VERSION ($APP_BUILD) for windows/amd64 (6 to 13 minutes on 2 cores the first time, seconds after)"
rm -f gatehouse.exe Gatehouse.exe
GOFLAGS=$(fyne_goflags) CGO_ENABLED=1 GOARCH=amd64 CC=x86_64-w64-mingw32-gcc CXX=x86_64-w64-mingw32-g++ \
  CGO_LDFLAGS="${CGO_LDFLAGS:+$CGO_LDFLAGS }-l:libssp.a" \
  "$fyne" package -os windows --release --icon assets/icons/gatehouse-256.png \
  --app-version "$VERSION" --app-build "$APP_BUILD"
mv Gatehouse.exe "$stage/gatehouse.exe"

say "making the installer"
makensis -V2 -INPUTCHARSET UTF8 \
  "-DVERSION=$VERSION" "-DAPP_BUILD=$APP_BUILD" \
  "-DEXE=$stage/gatehouse.exe" "-DLICENSE_FILE=$ROOT/LICENSE" "-DICON=$ROOT/assets/icons/gatehouse.ico" \
  "-DOUTFILE=$setup" packaging/windows/gatehouse.nsi
rm -rf "$stage"
ls -l "$setup"
