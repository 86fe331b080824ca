#!/usr/bin/env bash
# make package-darwin: Gatehouse.app (fyne package -os darwin) for the Mac
# this runs on, marked LSUIElement (a menu-bar app: no Dock icon), then
# dist/Gatehouse-VERSION.dmg (hdiutil). Signing and notarisation happen when
# their environment variables are set: see README.md beside this file.
# A Mac is needed: the cgo build of the GUI uses Apple's SDK and clang.
source "$(dirname "$0")/../lib.sh"

if [ "$(uname -s)" != Darwin ]; then
  die "make package-darwin runs on macOS only (it needs Apple's SDK, clang, codesign and hdiutil); this is $(uname -s). On Linux: make package-linux, make package-windows."
fi
for tool in hdiutil /usr/libexec/PlistBuddy; do
  command -v "$tool" >/dev/null || die "$tool is missing (it comes with macOS)"
done
keep_tree

stage=$DIST/darwin
rm -rf "$stage"
mkdir -p "$stage"
arch=$(uname -m) # arm64 or x86_64: the .app is for this Mac's kind
dmg=$DIST/Gatehouse-$VERSION-macos-$arch.dmg
rm -f "$dmg"

fyne=$(fyne_cli)
say "building Gatehouse.app $VERSION ($APP_BUILD) for darwin/$arch"
(cd "$stage" && GOFLAGS=$(fyne_goflags) "$fyne" package -os darwin --release \
  --src "$ROOT" --executable "$stage/build/gatehouse" \
  --app-version "$VERSION" --app-build "$APP_BUILD")
app=$stage/Gatehouse.app
plist=$app/Contents/Info.plist
[ -d "$app" ] || die "fyne package made no Gatehouse.app"

# A menu-bar app: no Dock icon and no app menu; the window still opens from
# the menu-bar icon. (Set before signing: the signature covers Info.plist.)
/usr/libexec/PlistBuddy -c "Delete :LSUIElement" "$plist" 2>/dev/null || true
/usr/libexec/PlistBuddy -c "Add :LSUIElement bool true" "$plist"
/usr/libexec/PlistBuddy -c "Set :LSApplicationCategoryType public.app-category.developer-tools" "$plist" 2>/dev/null ||
  /usr/libexec/PlistBuddy -c "Add :LSApplicationCategoryType string public.app-category.developer-tools" "$plist"
/usr/libexec/PlistBuddy -c "Print :LSUIElement" "$plist" | grep -q true || die "LSUIElement is not set"

# Optional: sign with a Developer ID (hardened runtime, which notarisation
# requires). MACOS_SIGN_IDENTITY is the certificate's name in the keychain,
# e.g. "Developer ID Application: Example Ltd (TEAMID1234)".
if [ -n "${MACOS_SIGN_IDENTITY:-}" ]; then
  say "signing with $MACOS_SIGN_IDENTITY"
  codesign --force --options runtime --timestamp --sign "$MACOS_SIGN_IDENTITY" "$app"
  codesign --verify --strict --verbose=2 "$app"
else
  say "not signed (MACOS_SIGN_IDENTITY is not set): Gatekeeper will ask users to allow it"
fi

# The disk image: the app beside a link to /Applications, to drag it onto.
mkdir "$stage/dmg"
cp -R "$app" "$stage/dmg/"
ln -s /Applications "$stage/dmg/Applications"
hdiutil create -volname "Gatehouse $VERSION" -srcfolder "$stage/dmg" -fs HFS+ -format UDZO -ov "$dmg"
if [ -n "${MACOS_SIGN_IDENTITY:-}" ]; then
  codesign --force --timestamp --sign "$MACOS_SIGN_IDENTITY" "$dmg"
fi

# Optional: notarise and staple, with a notarytool profile stored once with
# `xcrun notarytool store-credentials` (the password stays in the keychain).
if [ -n "${MACOS_NOTARY_PROFILE:-}" ]; then
  [ -n "${MACOS_SIGN_IDENTITY:-}" ] || die "notarisation needs a signed app: set MACOS_SIGN_IDENTITY too"
  say "notarising with profile $MACOS_NOTARY_PROFILE (a few minutes)"
  xcrun notarytool submit "$dmg" --keychain-profile "$MACOS_NOTARY_PROFILE" --wait
  xcrun stapler staple "$dmg"
fi
rm -rf "$stage"
ls -l "$dmg"
