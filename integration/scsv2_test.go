// SPDX-License-Identifier: MIT

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The import paths of scs v2's memstore and of this module's.
const (
	scsMemstorePath = "github.com/alexedwards/scs/v2/memstore"
	memstorePath    = "github.com/golangcollege/memstore"
)

// TestScsV2MemstoreDropIn builds and runs testdata/scsv2, a program written
// against scs v2's own memstore, as it is and with its import path changed to
// this module's memstore, and checks that both print the same. With only the
// import path changed, the build must fail at the calls of memstore.New()
// and nowhere else; so it runs the changed program once more with those
// calls written memstore.New(time.Minute), as the README's "Coming from scs
// v2's memstore" says.
func TestScsV2MemstoreDropIn(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "scsv2", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	original := string(src)
	if !strings.Contains(original, `"`+scsMemstorePath+`"`) {
		t.Fatalf("testdata/scsv2/main.go does not import %s", scsMemstorePath)
	}
	ported := strings.ReplaceAll(original, `"`+scsMemstorePath+`"`, `"`+memstorePath+`"`)
	newCalls := strings.Count(ported, "memstore.New()")
	if newCalls == 0 {
		t.Fatal("testdata/scsv2/main.go never calls memstore.New(): it no longer shows the one call that needs changing")
	}

	want := goRun(t, original)
	if got := goRun(t, strings.ReplaceAll(ported, "memstore.New()", "memstore.New(time.Minute)")); got != want {
		t.Errorf("with this module's memstore, the program prints\n%s\nwith scs's it prints\n%s", got, want)
	}

	out, err := goCmd(t, writeModule(t, ported), "build", "-o", os.DevNull, ".")
	errorLines := regexp.MustCompile(`(?m)^\./main\.go:\d+:\d+: (.*)$`).FindAllStringSubmatch(out, -1)
	if err == nil || len(errorLines) != newCalls {
		t.Fatalf("building the program with only its import path changed: %v, %d errors; want %d, one for each call of memstore.New()\n%s",
			err, len(errorLines), newCalls, out)
	}
	for _, e := range errorLines {
		if !strings.HasPrefix(e[1], "not enough arguments in call to memstore.New") {
			t.Errorf("building the program with only its import path changed: %q; want only errors at the calls of memstore.New()", e[0])
		}
	}
}

// goRun runs the program whose main.go is src, in a module of its own, and
// returns what it printed.
func goRun(t *testing.T, src string) string {
	t.Helper()
	out, err := goCmd(t, writeModule(t, src), "run", ".")
	if err != nil {
		t.Fatalf("go run: %v\n%s", err, out)
	}
	return out
}

// writeModule writes a module holding main.go with src, requiring the scs
// this module requires and this module's root, and returns its directory.
func writeModule(t *testing.T, src string) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	version, err := goCmd(t, ".", "list", "-m", "-f", "{{.Version}}", "github.com/alexedwards/scs/v2")
	if err != nil {
		t.Fatalf("finding the version of scs this module requires: %v\n%s", err, version)
	}
	scsVersion := strings.TrimSpace(version)
	sum, err := os.ReadFile("go.sum") // scs's checksums, so that no lookup is needed
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	goMod := "module scsv2\n\ngo 1.25\n\n" +
		"require (\n\tgithub.com/alexedwards/scs/v2 " + scsVersion + "\n\t" + memstorePath + " v0.0.0-00010101000000-000000000000\n)\n\n" +
		"replace " + memstorePath + " => " + root + "\n"
	for name, content := range map[string]string{"go.mod": goMod, "go.sum": string(sum), "main.go": src} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// goCmd runs the go command with args in dir, offline, and returns its
// combined output.
func goCmd(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on $PATH: %v", err)
	}
	cmd := exec.Command(goBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
