#!/usr/bin/env bash
# make package-linux: the tarball `fyne package -os linux` makes, and a .deb
# and an .rpm (nfpm, packaging/linux/nfpm.yaml) holding the same binary,
# into dist/. Needs what scripts/deps.sh package-linux installs.
source "$(dirname "$0")/../lib.sh"
keep_tree

NFPM_VERSION=v2.45.2
stage=$DIST/linux
rm -rf "$stage"
mkdir -p "$stage/build" "$stage/unpacked"
rm -f "$DIST"/gatehouse_*.deb "$DIST"/gatehouse-*.rpm "$DIST"/gatehouse-*-linux-*.tar.xz

# nfpm, once, into bin/tools (newer versions do not build here).
nfpm=$ROOT/bin/tools/nfpm
if ! "$nfpm" --version 2>/dev/null | grep -q "${NFPM_VERSION#v}"; then
  say "installing nfpm $NFPM_VERSION into bin/tools"
  GOBIN=$ROOT/bin/tools "$GO" install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION"
fi

# fyne builds the release binary (trimmed paths, hardened C flags, the
# metadata of FyneApp.toml inside) and packs the tarball: usr/local/bin,
# the .desktop entry, the icon and a Makefile for `make user-install`.
fyne=$(fyne_cli)
say "building gatehouse $VERSION ($APP_BUILD) for linux/amd64"
(cd "$stage" && GOFLAGS=$(fyne_goflags) "$fyne" package -os linux --release \
  --src "$ROOT" --executable "$stage/build/gatehouse" \
  --app-version "$VERSION" --app-build "$APP_BUILD")
tarball=$DIST/gatehouse-$VERSION-linux-amd64.tar.xz
mv "$stage/Gatehouse.tar.xz" "$tarball"

# The .deb and .rpm get the binary from the tarball: the same bytes. (Its
# prefix is usr/local, or usr where the build machine has no /usr/local.)
tar -xJf "$tarball" -C "$stage/unpacked"
cp "$(find "$stage/unpacked" -path '*/bin/gatehouse' -type f)" "$stage/gatehouse"
"$stage/gatehouse" version | grep -q "^gatehouse $VERSION " || die "the binary does not say version $VERSION"
sed -e "s/@VERSION@/$VERSION/" -e "s/@DATE@/$(git log -1 --format=%cs 2>/dev/null || date -u +%F)/" \
  "packaging/linux/$APP_ID.metainfo.xml.in" >"$stage/$APP_ID.metainfo.xml"

# Software centres and menus read these; a mistake fails the build.
desktop-file-validate "packaging/linux/$APP_ID.desktop" "$(find "$stage/unpacked" -name "$APP_ID.desktop")"
appstreamcli validate --no-net --pedantic "$stage/$APP_ID.metainfo.xml" >&2

for packager in deb rpm; do
  VERSION=$VERSION BUILD=$APP_BUILD STAGE=$stage \
    "$nfpm" package --config packaging/linux/nfpm.yaml --packager "$packager" --target "$DIST/" >&2
done
rm -rf "$stage"
ls -l "$tarball" "$DIST"/gatehouse_*.deb "$DIST"/gatehouse-*.rpm
