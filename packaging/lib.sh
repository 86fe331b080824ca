# Sourced by packaging/*/build.sh (make package-linux, package-windows,
# package-darwin): where things are, the version, and a tree left as found.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DIST=$ROOT/dist
GO=${GO:-go}

say() { echo "package: $*" >&2; }
die() { say "$*"; exit 1; }

# fyneapp KEY prints a value of FyneApp.toml's [Details] (Version, Build,
# ID, Name): the one place they are kept.
fyneapp() { sed -n "s/^$1 *= *\"\{0,1\}\([^\"]*\)\"\{0,1\} *\$/\1/p" FyneApp.toml | head -n 1; }
VERSION=${VERSION:-$(fyneapp Version)}
APP_BUILD=${APP_BUILD:-$(fyneapp Build)}
APP_ID=$(fyneapp ID)
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "VERSION must be x.y.z (Windows and the package managers compare it), not \"$VERSION\""
[[ $APP_BUILD =~ ^[0-9]+$ ]] || die "the build number must be a whole number, not \"$APP_BUILD\""

# fyne prints the path of the fyne CLI (go.mod's tool fyne.io/tools/cmd/fyne),
# built for this machine: the packaging runs it with a cross compiler in the
# environment, which must not reach the build of the CLI itself.
fyne_cli() { "$GO" tool -n fyne; }

# The -X flag `gatehouse version` prints, the way `fyne package` takes
# ldflags: from GOFLAGS, one word each.
fyne_goflags() { echo "${GOFLAGS:+$GOFLAGS }-ldflags=-X=main.version=$VERSION"; }

# keep_tree makes the script leave the checkout as it found it: `fyne
# package` rewrites FyneApp.toml (Build + 1, comments dropped) and writes
# fyne_metadata_init.go (and for Windows fyne.syso and an .exe) beside the
# sources while it builds. At exit the file is put back, leftovers of an
# interrupted build are removed, and a `git status` that changed anyway
# fails the run.
keep_tree() {
  KEEP_FYNEAPP=$(mktemp)
  cp FyneApp.toml "$KEEP_FYNEAPP"
  KEEP_STATUS=$(git status --porcelain --untracked-files=all 2>/dev/null || echo "not a git checkout")
  trap restore_tree EXIT
}

restore_tree() {
  local rc=$?
  cp "$KEEP_FYNEAPP" FyneApp.toml
  rm -f "$KEEP_FYNEAPP" fyne_metadata_init.go fyne.syso FyneApp.ico gatehouse.exe.manifest Gatehouse.exe Gatehouse.tar.xz
  rm -rf tmp-pkg
  local now
  now=$(git status --porcelain --untracked-files=all 2>/dev/null || echo "not a git checkout")
  if [ "$now" != "$KEEP_STATUS" ]; then
    say "packaging changed the checkout; git status before:"
    echo "${KEEP_STATUS:-  (clean)}" >&2
    say "and after:"
    echo "$now" >&2
    rc=1
  fi
  exit $rc
}
