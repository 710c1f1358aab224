// SPDX-License-Identifier: MIT

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sample is benchmark output as the scaling benchmarks print it, with two
// runs (-count 2) of GCTax at one size and one run of Scaling at two,
// between the lines go test adds.
const sample = `goos: linux
goarch: amd64
pkg: github.com/golangcollege/memstore/integration
cpu: AMD EPYC
BenchmarkGCTax/store=memstore/n=1000-2         	       1	        14.00 gc-cpu-%-held	         4.000 gc-cpu-%-base	      5480 p99.9-µs-held	      1560 p99.9-µs-base	     42420 req/s-held	     50000 req/s-base	         0.80 throughput-ratio
BenchmarkGCTax/store=memstore/n=1000-2         	       1	        16.00 gc-cpu-%-held	         6.000 gc-cpu-%-base	      7480 p99.9-µs-held	      1760 p99.9-µs-base	     44420 req/s-held	     50000 req/s-base	         0.90 throughput-ratio
BenchmarkGCTax/store=scs-memstore/n=1000-2     	       1	        18.84 gc-cpu-%-held	         4.187 gc-cpu-%-base	      5530 p99.9-µs-held	      8092 p99.9-µs-base	     51892 req/s-held	     11371 req/s-base	         0.456 throughput-ratio
BenchmarkScaling/store=memstore/n=1000-2       	       1	        52.00 find-hit-ns	        71.00 mixed-ns	       323.7 heap-B/session	        65.74 max-µs-sweep	         0.7670 p99.99-µs-sweep	         0.5328 read-ms	         6.067 sweep-ms	         3.018 write-ms
BenchmarkScaling/store=scs-memstore/n=1000-2   	       1	        88.00 find-hit-ns	       323.7 heap-B/session	        86.02 max-µs-sweep	        86.02 p99.99-µs-sweep	         2.051 sweep-ms
BenchmarkScaling/store=memstore/n=1000000-2    	       1	       528.0 find-hit-ns	       325.4 heap-B/session	      6907 max-µs-sweep	         2.559 p99.99-µs-sweep	       760.9 read-ms	      8476 sweep-ms	       548.6 write-ms
BenchmarkScaling/store=scs-memstore/n=1000000-2	       1	       638.0 find-hit-ns	       325.3 heap-B/session	    132422 max-µs-sweep	    132422 p99.99-µs-sweep	       149.4 sweep-ms
BenchmarkStores/store=memstore/find-hit-2      	 1000000	        62.00 ns/op
PASS
ok  	github.com/golangcollege/memstore/integration	12.126s
`

// TestRun: the table has a row per size and store, in the order of the
// input, with the median of each metric's runs and "—" for figures a store
// has not; both charts are written as SVG.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	var table bytes.Buffer
	if err := run(strings.NewReader(sample), dir, &table); err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(table.String()), "\n")
	want := []string{
		"| 1,000 | memstore | 52 ns | 71 ns | 324 B | 0.85x | 15% (5%) | 6.5 ms (1.7 ms) | 6.1 ms | 66 µs | 3.0 ms | 533 µs |",
		"| 1,000 | scs-memstore | 88 ns | — | 324 B | 0.46x | 19% (4%) | 5.5 ms (8.1 ms) | 2.1 ms | 86 µs | — | — |",
		"| 1,000,000 | memstore | 528 ns | — | 325 B | — | — | — | 8.5 s | 6.9 ms | 549 ms | 761 ms |",
		"| 1,000,000 | scs-memstore | 638 ns | — | 325 B | — | — | — | 149 ms | 132 ms | — | — |",
	}
	if len(rows) != 2+len(want) {
		t.Fatalf("the table has %d lines; want a header, a separator and %d rows:\n%s", len(rows), len(want), table.String())
	}
	for i, w := range want {
		if rows[2+i] != w {
			t.Errorf("row %d:\n got %s\nwant %s", i+1, rows[2+i], w)
		}
	}
	for _, name := range []string{"gctax.svg", "findwait.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("<svg")) || !bytes.Contains(b, []byte("memstore")) {
			t.Errorf("%s is not an SVG chart with a line named memstore: %.200s", name, b)
		}
	}
}

// TestRunRejects: input without the scaling benchmarks, or with a name or a
// line it cannot read, is an error rather than an empty chart.
func TestRunRejects(t *testing.T) {
	for name, input := range map[string]string{
		"no results":  "goos: linux\nPASS\n",
		"no store":    "BenchmarkScaling/n=1000-2 1 52.00 find-hit-ns\n",
		"bad size":    "BenchmarkScaling/store=memstore/n=many-2 1 52.00 find-hit-ns\n",
		"bad value":   "BenchmarkScaling/store=memstore/n=1000-2 1 fast find-hit-ns\n",
		"no unit":     "BenchmarkScaling/store=memstore/n=1000-2 1 52.00\n",
		"nothing yet": "",
	} {
		t.Run(strings.ReplaceAll(name, " ", "-"), func(t *testing.T) {
			if err := run(strings.NewReader(input), t.TempDir(), new(bytes.Buffer)); err == nil {
				t.Errorf("run accepted %q", input)
			}
		})
	}
}

// TestSessionTicks: the sessions axis is labelled at each power of ten, with
// its digits grouped, and marked at the multiples in between.
func TestSessionTicks(t *testing.T) {
	var labels []string
	marks := 0
	for _, tick := range (sessionTicks{}).Ticks(1000, 1e7) {
		if tick.Label != "" {
			labels = append(labels, tick.Label)
		} else {
			marks++
		}
	}
	want := []string{"1,000", "10,000", "100,000", "1,000,000", "10,000,000"}
	if strings.Join(labels, " ") != strings.Join(want, " ") || marks != 4*8 {
		t.Errorf("labels %q and %d unlabelled marks; want %q and %d", labels, marks, want, 4*8)
	}
}

// TestRunPartial: output of BenchmarkGCTax alone makes the GC tax chart and
// leaves the Find wait chart, whose figures come from BenchmarkScaling, as
// it was.
func TestRunPartial(t *testing.T) {
	var gcTaxOnly []string
	for _, line := range strings.Split(sample, "\n") {
		if !strings.HasPrefix(line, "BenchmarkScaling/") {
			gcTaxOnly = append(gcTaxOnly, line)
		}
	}
	dir := t.TempDir()
	if err := run(strings.NewReader(strings.Join(gcTaxOnly, "\n")), dir, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "gctax.svg")); err != nil {
		t.Errorf("no GC tax chart: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "findwait.svg")); !os.IsNotExist(err) {
		t.Errorf("a Find wait chart was written with no figures for it (%v)", err)
	}
}
