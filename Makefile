# Gatehouse. `make run` runs it, `make test` runs every test; both install
# what they need first (see scripts/deps.sh).

GO := $(shell ./scripts/deps.sh go)
ifeq ($(GO),)
$(error no Go toolchain; see the messages above)
endif
# Tests run `go build` themselves: the same toolchain comes first on PATH.
export PATH := $(dir $(GO)):$(PATH)
# The version and build number live in FyneApp.toml (make VERSION=x.y.z
# APP_BUILD=n overrides them); `gatehouse version` prints VERSION.
VERSION ?= $(shell sed -n 's/^Version *= *"\(.*\)"/\1/p' FyneApp.toml)
APP_BUILD ?= $(shell sed -n 's/^Build *= *\([0-9]*\)/\1/p' FyneApp.toml)
LDFLAGS := -s -w -X main.version=$(VERSION)
ARGS ?=
# What the packaging scripts are told, and where they put what they make.
PACKAGE_ENV := GO=$(GO) VERSION=$(VERSION) APP_BUILD=$(APP_BUILD)
DEB := dist/gatehouse_$(VERSION)-$(APP_BUILD)_amd64.deb
RPM := dist/gatehouse-$(VERSION)-$(APP_BUILD).x86_64.rpm
TARBALL := dist/gatehouse-$(VERSION)-linux-amd64.tar.xz
SETUP_EXE := dist/gatehouse-$(VERSION)-windows-amd64-setup.exe

.PHONY: run test vet fmt-check build build-headless bench bench-wrk soak fuzz screenshot icons clean \
	package-linux package-windows package-darwin

## run: start Gatehouse: the window, the tray and the forwarder (without a
## display, the forwarder alone); ARGS="serve --config FILE" for headless
run:
	./scripts/deps.sh run
	$(GO) run . $(ARGS)

## test: formatting, vet, the Linux and Windows packages, benchmarks once
## (so they keep compiling), then every test with the race detector, against
## a real Secret Service (gnome-keyring on a private D-Bus session; the
## user's keyring is untouched); the package tests install the .deb (as root
## or with password-less sudo), run it and remove it, and look inside the
## .rpm and the Windows installer
test: fmt-check vet package-linux package-windows
	./scripts/deps.sh test
	$(GO) test -run '^$$' -bench . -benchtime 100x ./...
	GATEHOUSE_VERSION=$(VERSION) GATEHOUSE_APP_BUILD=$(APP_BUILD) GATEHOUSE_DEB=$(CURDIR)/$(DEB) \
	GATEHOUSE_RPM=$(CURDIR)/$(RPM) GATEHOUSE_TARBALL=$(CURDIR)/$(TARBALL) GATEHOUSE_SETUP_EXE=$(CURDIR)/$(SETUP_EXE) \
	CGO_ENABLED=1 ./scripts/keyring-session.sh ./scripts/gotest.sh $(GO) test -race -count=1 -timeout 15m -v ./...

## vet: go vet here, and for Windows and macOS, so that code for one OS
## (launch at login, the system proxy, the keychain) cannot break unseen:
## the headless flavour on both, and the app package for Windows (Fyne's
## widgets need cgo on macOS, which only a Mac has)
vet:
	$(GO) vet ./...
	$(GO) vet -tags headless ./...
	GOOS=windows CGO_ENABLED=0 $(GO) vet -tags headless ./...
	GOOS=windows CGO_ENABLED=0 $(GO) vet ./app/...
	GOOS=darwin CGO_ENABLED=0 $(GO) vet -tags headless $$($(GO) list ./... | grep -v '/app$$')

fmt-check:
	@out=$$($(dir $(GO))gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi

## build: the desktop binary
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o gatehouse .

## build-headless: a static binary without the desktop app, for servers and WSL
build-headless:
	CGO_ENABLED=0 $(GO) build -trimpath -tags headless -ldflags '$(LDFLAGS)' -o gatehouse .

## bench: Gatehouse beside a bare reverse proxy (table of ratios, bench.json),
## then the Go benchmarks of the hot paths
bench:
	./scripts/deps.sh bench
	$(GO) build -o bin/gatehouse .
	$(GO) run ./internal/benchrun --gatehouse bin/gatehouse --out bench.json
	$(GO) test -run '^$$' -bench . -benchmem ./...

## bench-wrk: only the outside measurement (wrk, one connection, the mock,
## the floor, gatehouse serve and gatehouse with the cache and pacing on),
## ROUNDS rounds of 3 s (default 9, as make bench runs): for trying a
## change to the request path
ROUNDS ?= 9
bench-wrk:
	./scripts/deps.sh bench
	$(GO) build -o bin/gatehouse .
	$(GO) run ./internal/benchrun --gatehouse bin/gatehouse --wrk-only $(ROUNDS)

## soak: mixed traffic through gatehouse serve for SOAK (default 2m) with a
## proxy stopped and restarted and config reloads; fails on a wrong answer
## or a leak
SOAK ?= 2m
soak:
	./scripts/deps.sh run
	$(GO) build -o bin/gatehouse .
	$(GO) run ./internal/benchrun --gatehouse bin/gatehouse --soak $(SOAK)

## fuzz: run the model extraction fuzzer for a minute
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzExtractModel -fuzztime 60s ./proxy/

## screenshot: PNGs of every section of the window at 1280x800 and 800x600,
## in English and Chinese, taken under Xvfb (into SHOTS, default screenshots/)
SHOTS ?= screenshots
screenshot:
	./scripts/deps.sh run
	./scripts/deps.sh screenshot
	$(GO) build -o bin/gatehouse .
	$(GO) run ./internal/screenshot --gatehouse bin/gatehouse --out $(SHOTS)

## icons: render assets/*.png and assets/icons/ (every size the installers
## use, and the Windows .ico) from the SVG sources
icons:
	command -v rsvg-convert >/dev/null || apt-get install -y librsvg2-bin
	command -v convert >/dev/null || apt-get install -y imagemagick
	./assets/render.sh

## package-linux: dist/gatehouse-VERSION-linux-amd64.tar.xz (fyne package),
## and the .deb and .rpm (nfpm): /usr/bin/gatehouse, menu entry, icons,
## AppStream metainfo, licence
package-linux:
	./scripts/deps.sh package-linux
	$(PACKAGE_ENV) ./packaging/linux/build.sh

## package-windows: dist/gatehouse-VERSION-windows-amd64-setup.exe, a
## per-user NSIS installer of gatehouse.exe, cross-compiled with MinGW-w64
package-windows:
	./scripts/deps.sh package-windows
	$(PACKAGE_ENV) ./packaging/windows/build.sh

## package-darwin: dist/Gatehouse-VERSION-macos-ARCH.dmg holding Gatehouse.app; on a
## Mac only (signing and notarisation: packaging/macos/README.md)
package-darwin:
	$(PACKAGE_ENV) ./packaging/macos/build.sh

clean:
	rm -rf gatehouse bin screenshots dist
