#!/usr/bin/env bash
# Installs what `make run` and `make test` need on a fresh Debian or Ubuntu
# machine, and nothing when it is already there.
#
#   scripts/deps.sh go        print the path of a Go toolchain new enough for
#                             go.mod, fetching one if needed
#   scripts/deps.sh test      system packages the tests need
#   scripts/deps.sh run       system packages the program needs (and its
#                             desktop build: a C compiler, GL, X11, Wayland)
#   scripts/deps.sh screenshot  what make screenshot needs besides
#   scripts/deps.sh package-linux    what make package-linux needs: the
#                             desktop build, xz, and the .desktop and
#                             AppStream validators
#   scripts/deps.sh package-windows  what make package-windows needs: the
#                             MinGW-w64 cross compiler and NSIS
#   scripts/deps.sh bench     what make bench and bench-wrk need: the
#                             desktop build; wrk (the outside measurement)
#                             and Xvfb (the desktop app's path) if it can
#
# System packages come from apt-get when they are missing and we are root or
# have password-less sudo; otherwise the exact command to run is printed.
# A Go toolchain comes from the Go module proxy (the toolchain is published
# there as the module golang.org/toolchain), as the go command itself does.
set -euo pipefail
cd "$(dirname "$0")/.."

GO_WANT=$(sed -n 's/^go \([0-9.]*\)$/\1/p' go.mod)
# The desktop app is a cgo build of Fyne (GLFW with X11 and Wayland).
GUI_BUILD_PKGS=(gcc libc6-dev pkg-config libgl1-mesa-dev libx11-dev libxcursor-dev libxrandr-dev
  libxinerama-dev libxi-dev libxxf86vm-dev libwayland-dev libxkbcommon-dev)
RUN_PKGS=(ca-certificates "${GUI_BUILD_PKGS[@]}")
# gnome-keyring and dbus give the keychain tests a real Secret Service; dbus-x11
# is left out on purpose (it makes godbus start stray session buses).
# tinyproxy and microsocks are real proxy daemons the pool tests route through.
# xvfb is the X server the desktop app's tests open its window on.
# desktop-file-validate checks the launch-at-login entry.
TEST_PKGS=(ca-certificates gnome-keyring dbus-daemon dbus-bin tinyproxy microsocks xvfb desktop-file-utils "${GUI_BUILD_PKGS[@]}")
# make screenshot: clicks (xdotool), the window saved (imagemagick), and
# glyphs for the Chinese screens (fonts-noto-cjk).
SHOT_PKGS=(xvfb xdotool imagemagick fonts-noto-cjk)
# make package-linux: the release build is the desktop build; the tarball is
# xz; desktop-file-validate and appstreamcli check what menus and software
# centres read. The tests also look inside the .rpm (rpm, cpio) and the Windows
# installer (7z, from p7zip-full).
PKG_LINUX_PKGS=("${RUN_PKGS[@]}" xz-utils desktop-file-utils appstream rpm cpio)
# make package-windows: Debian's MinGW-w64 cross compiler, NSIS (makensis),
# and a C compiler for this machine, for building the fyne CLI.
PKG_WINDOWS_PKGS=(ca-certificates gcc libc6-dev gcc-mingw-w64-x86-64 nsis p7zip-full)
# make bench: the desktop build (bin/gatehouse is the binary users run),
# and, when they can be installed, wrk (the load generator of the outside
# measurement) and xvfb (on which the desktop app's window is open while
# its forwarding is measured): without them make bench leaves those out.
BENCH_EXTRA_PKGS=(wrk xvfb)

say() { echo "deps: $*" >&2; }

apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    say "missing packages ${missing[*]}, and this is not a Debian or Ubuntu system; install them with your package manager"
    exit 1
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      say "missing packages: ${missing[*]}"
      say "run: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
      exit 1
    fi
  fi
  say "installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# go_ok GO: the toolchain runs and is at least 1.21, from where the go command
# fetches the exact version go.mod asks for by itself (GOTOOLCHAIN=auto).
go_ok() {
  local v
  v=$("$1" env GOVERSION 2>/dev/null) || return 1
  v=${v#go}
  local major=${v%%.*} rest=${v#*.}
  local minor=${rest%%.*}
  [ "$major" -gt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -ge 21 ]; }
}

find_go() {
  local candidates=()
  command -v go >/dev/null 2>&1 && candidates+=("$(command -v go)")
  candidates+=(/usr/local/go/bin/go "$HOME/.cache/gatehouse/go$GO_WANT/bin/go")
  for g in "${candidates[@]}"; do
    if [ -x "$g" ] && go_ok "$g"; then
      echo "$g"
      return 0
    fi
  done
  return 1
}

fetch_go() {
  apt_install ca-certificates curl unzip
  local arch
  case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) say "no Go toolchain for $(uname -m); install Go $GO_WANT from go.dev/dl"; exit 1 ;;
  esac
  local dest="$HOME/.cache/gatehouse" mod="v0.0.1-go$GO_WANT.linux-$arch"
  local proxy=${GOPROXY:-https://proxy.golang.org}
  proxy=${proxy%%,*}
  say "fetching Go $GO_WANT from $proxy (about 70 MB, once)"
  mkdir -p "$dest"
  local tmp
  tmp=$(mktemp -d)
  curl -fsSL "$proxy/golang.org/toolchain/@v/$mod.zip" -o "$tmp/go.zip"
  unzip -q "$tmp/go.zip" -d "$tmp"
  rm -rf "$dest/go$GO_WANT"
  mv "$tmp/golang.org/toolchain@$mod" "$dest/go$GO_WANT"
  chmod +x "$dest/go$GO_WANT/bin/"* "$dest/go$GO_WANT/pkg/tool/"*/* 2>/dev/null || true
  rm -rf "$tmp"
}

case "${1:-}" in
  go)
    find_go || { fetch_go; find_go; } || { say "could not set up Go $GO_WANT"; exit 1; }
    ;;
  test) apt_install "${TEST_PKGS[@]}" ;;
  run) apt_install "${RUN_PKGS[@]}" ;;
  screenshot) apt_install "${SHOT_PKGS[@]}" ;;
  package-linux) apt_install "${PKG_LINUX_PKGS[@]}" ;;
  package-windows) apt_install "${PKG_WINDOWS_PKGS[@]}" ;;
  bench)
    apt_install "${RUN_PKGS[@]}"
    ( apt_install "${BENCH_EXTRA_PKGS[@]}" ) || say "going on without ${BENCH_EXTRA_PKGS[*]}: make bench leaves out what needs them"
    ;;
  *) echo "usage: scripts/deps.sh go|test|run|screenshot|package-linux|package-windows|bench" >&2; exit 2 ;;
esac
