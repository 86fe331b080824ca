//go:build !headless

package main

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Resource types of a PE file (winuser.h).
const (
	rtIcon      = 3
	rtGroupIcon = 14
	rtVersion   = 16
	rtManifest  = 24
)

// resources reads a PE file's resource tree (type, name, language) and
// returns the data of each resource by type, in the file's order.
func resources(t *testing.T, f *pe.File) map[uint32][][]byte {
	t.Helper()
	sec := f.Section(".rsrc")
	require.NotNil(t, sec, "no .rsrc section: no icon, no version information")
	data, err := sec.Data()
	require.NoError(t, err)
	out := map[uint32][][]byte{}
	// entries reads one IMAGE_RESOURCE_DIRECTORY: (id, offset, isDir) each.
	type entry struct {
		id     uint32
		offset uint32
		dir    bool
	}
	entries := func(off uint32) []entry {
		require.LessOrEqual(t, int(off)+16, len(data))
		n := int(binary.LittleEndian.Uint16(data[off+12:])) + int(binary.LittleEndian.Uint16(data[off+14:]))
		var es []entry
		for i := range n {
			p := off + 16 + uint32(i)*8
			require.LessOrEqual(t, int(p)+8, len(data))
			target := binary.LittleEndian.Uint32(data[p+4:])
			es = append(es, entry{id: binary.LittleEndian.Uint32(data[p:]), offset: target &^ (1 << 31), dir: target&(1<<31) != 0})
		}
		return es
	}
	for _, typ := range entries(0) {
		require.True(t, typ.dir)
		for _, name := range entries(typ.offset) {
			require.True(t, name.dir)
			for _, lang := range entries(name.offset) {
				require.False(t, lang.dir)
				rva := binary.LittleEndian.Uint32(data[lang.offset:])
				size := binary.LittleEndian.Uint32(data[lang.offset+4:])
				start := rva - sec.VirtualAddress
				require.LessOrEqual(t, int(start+size), len(data), "resource outside .rsrc")
				out[typ.id] = append(out[typ.id], data[start:start+size])
			}
		}
	}
	return out
}

// versionInfo reads a VS_VERSIONINFO resource: the fixed file version
// (a.b.c.d) and the strings of its StringFileInfo.
func versionInfo(t *testing.T, data []byte) (string, map[string]string) {
	t.Helper()
	sig := bytes.Index(data, []byte{0xbd, 0x04, 0xef, 0xfe}) // VS_FIXEDFILEINFO.dwSignature
	require.GreaterOrEqual(t, sig, 0, "no VS_FIXEDFILEINFO")
	ms := binary.LittleEndian.Uint32(data[sig+8:])
	ls := binary.LittleEndian.Uint32(data[sig+12:])
	fixed := fmt.Sprintf("%d.%d.%d.%d", ms>>16, ms&0xffff, ls>>16, ls&0xffff)

	strs := map[string]string{}
	// Every node: wLength, wValueLength, wType, szKey (UTF-16, NUL), padding
	// to 4 bytes, the value, padding, then its children.
	var walk func(b []byte)
	walk = func(b []byte) {
		for len(b) >= 6 {
			length := int(binary.LittleEndian.Uint16(b))
			if length < 6 || length > len(b) {
				return
			}
			node := b[:length]
			valueLen := int(binary.LittleEndian.Uint16(node[2:]))
			isText := binary.LittleEndian.Uint16(node[4:]) == 1
			key, p := utf16String(node[6:])
			p = align4(6 + p)
			if isText && valueLen > 0 && p < len(node) {
				value, _ := utf16String(node[p:min(len(node), p+valueLen*2)])
				strs[key] = value
				p = align4(p + valueLen*2)
			} else {
				p = align4(p + valueLen)
			}
			if p < len(node) {
				walk(node[p:])
			}
			if align4(length) >= len(b) {
				return
			}
			b = b[align4(length):]
		}
	}
	walk(data)
	return fixed, strs
}

func align4(n int) int { return (n + 3) &^ 3 }

// utf16String reads a NUL-terminated UTF-16LE string and the bytes it took.
func utf16String(b []byte) (string, int) {
	var u []uint16
	i := 0
	for ; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			return string(utf16.Decode(u)), i + 2
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u)), i
}

// TestWindowsInstaller looks inside the installer make package-windows
// made (nothing Windows can run here): a 32-bit GUI installer with the
// icon and version information, holding a 64-bit GUI gatehouse.exe with
// Gatehouse's icon, its version and a manifest, and an uninstaller.
func TestWindowsInstaller(t *testing.T) {
	setup := artefact(t, "GATEHOUSE_SETUP_EXE", "package-windows")
	need(t, "7z")
	version, build := packageVersion(t)
	fourPart := version + "." + strconv.Itoa(build)

	f, err := pe.Open(setup)
	require.NoError(t, err, "the installer is a PE file")
	defer f.Close()
	assert.Equal(t, uint16(pe.IMAGE_FILE_MACHINE_I386), f.Machine, "NSIS installers are 32-bit, for every Windows")
	oh, ok := f.OptionalHeader.(*pe.OptionalHeader32)
	require.True(t, ok)
	assert.Equal(t, uint16(pe.IMAGE_SUBSYSTEM_WINDOWS_GUI), oh.Subsystem)
	res := resources(t, f)
	require.NotEmpty(t, res[rtGroupIcon], "the installer has an icon")
	ico, err := os.ReadFile("assets/icons/gatehouse.ico")
	require.NoError(t, err)
	icons := int(binary.LittleEndian.Uint16(ico[4:]))
	assert.Equal(t, icons, int(binary.LittleEndian.Uint16(res[rtGroupIcon][0][4:])), "the installer's icon has every size of assets/icons/gatehouse.ico")
	require.Len(t, res[rtVersion], 1)
	fixed, strs := versionInfo(t, res[rtVersion][0])
	assert.Equal(t, fourPart, fixed)
	assert.Equal(t, "Gatehouse", strs["ProductName"])
	assert.Equal(t, version, strs["ProductVersion"])

	// 7-Zip reads NSIS installers: the files it installs.
	out, err := exec.Command("7z", "l", "-slt", setup).CombinedOutput()
	require.NoError(t, err, string(out))
	var paths []string
	for _, line := range strings.Split(string(out), "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "Path = "); ok && p != setup && !strings.HasPrefix(p, "$PLUGINSDIR") {
			paths = append(paths, p)
		}
	}
	assert.ElementsMatch(t, []string{"gatehouse.exe", "LICENSE.txt", "uninstall.exe"}, paths)
	dir := t.TempDir()
	out, err = exec.Command("7z", "x", "-o"+dir, setup, "gatehouse.exe", "LICENSE.txt").CombinedOutput()
	require.NoError(t, err, string(out))
	license, err := os.ReadFile(filepath.Join(dir, "LICENSE.txt"))
	require.NoError(t, err)
	assert.Contains(t, string(license), "MIT License")

	exe := filepath.Join(dir, "gatehouse.exe")
	g, err := pe.Open(exe)
	require.NoError(t, err, "gatehouse.exe is a PE file")
	defer g.Close()
	assert.Equal(t, uint16(pe.IMAGE_FILE_MACHINE_AMD64), g.Machine)
	goh, ok := g.OptionalHeader.(*pe.OptionalHeader64)
	require.True(t, ok)
	assert.Equal(t, uint16(pe.IMAGE_SUBSYSTEM_WINDOWS_GUI), goh.Subsystem, "a GUI program: no console window")
	res = resources(t, g)
	require.NotEmpty(t, res[rtGroupIcon], "gatehouse.exe has an icon")
	require.NotEmpty(t, res[rtIcon])
	require.NotEmpty(t, res[rtManifest])
	// The icon is Gatehouse's: the same pixels as assets/icons/gatehouse-256.png.
	got, err := png.Decode(bytes.NewReader(res[rtIcon][0]))
	require.NoError(t, err, "the icon is a PNG image")
	want := decodePNG(t, "assets/icons/gatehouse-256.png")
	require.Equal(t, want.Bounds(), got.Bounds())
	assert.True(t, samePixels(want, got), "gatehouse.exe's icon is not assets/icons/gatehouse-256.png")

	require.NotEmpty(t, res[rtVersion])
	fixed, strs = versionInfo(t, res[rtVersion][0])
	assert.Equal(t, fourPart, fixed)
	assert.Equal(t, "Gatehouse", strs["ProductName"])
	assert.Equal(t, fourPart, strs["ProductVersion"])

	settings := buildSettings(t, exe)
	assert.Equal(t, "windows", settings["GOOS"])
	assert.Equal(t, "1", settings["CGO_ENABLED"], "the desktop build (GLFW is C)")
	assert.Equal(t, "true", settings["-trimpath"])
	assert.Contains(t, settings["-tags"], "migrated_fynedo")
	data, err := os.ReadFile(exe)
	require.NoError(t, err)
	assert.Contains(t, string(data), "gatehouse %s (%s, %s %s/%s)", "the gatehouse program, with its commands")
}

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	return img
}

// samePixels compares two images, premultiplied, allowing the rounding
// of up to two 8-bit steps that re-encoding a translucent pixel may cost (fyne
// draws the icon into a premultiplied RGBA image before encoding it).
func samePixels(a, b image.Image) bool {
	r := a.Bounds()
	near := func(x, y uint32) bool { return max(x, y)-min(x, y) <= 2*0x101 }
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			ar, ag, ab, aa := a.At(x, y).RGBA()
			br, bg, bb, ba := b.At(x, y).RGBA()
			if !near(ar, br) || !near(ag, bg) || !near(ab, bb) || !near(aa, ba) {
				return false
			}
		}
	}
	return true
}
