// SPDX-License-Identifier: MIT

// Command charts turns the output of the integration module's scaling
// benchmarks (BenchmarkGCTax and BenchmarkScaling) into two SVG charts,
// gctax.svg and findwait.svg, and a markdown table of the medians. Each
// figure is the median of the runs (-count) in the output: give it several
// runs, as docs/scaling.md says, for a figure worth quoting.
//
// From the integration module, a run of six and its charts, into a
// directory of your choice:
//
//	go test -run '^$' -bench 'GCTax|Scaling' -benchtime 1x -count 6 -timeout 0 . -max-sessions 1000000 > ../docs/results/scaling.txt &&
//	go run ./cmd/charts -in ../docs/results/scaling.txt -out /tmp/charts > /tmp/charts/table.md
//
// Usage:
//
//	charts [-in FILE] [-out DIR]
//
// It reads the benchmark output from FILE (standard input by default),
// writes the charts into DIR (the current directory by default) and prints
// the table on standard output.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

func main() {
	in := flag.String("in", "", "the benchmark output to read (default: standard input)")
	out := flag.String("out", ".", "the directory to write gctax.svg and findwait.svg into")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("charts: ")

	r := io.Reader(os.Stdin)
	if *in != "" {
		f, err := os.Open(*in)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		r = f
	}
	if err := run(r, *out, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run reads benchmark output from r, writes the charts into dir and the
// table to table. A chart whose metric the output lacks (that of a
// benchmark not run) is left as it was, with a message.
func run(r io.Reader, dir string, table io.Writer) error {
	res, err := parse(r)
	if err != nil {
		return err
	}
	if len(res.stores) == 0 {
		return fmt.Errorf("no BenchmarkGCTax or BenchmarkScaling results in the input")
	}
	for name, spec := range map[string]chartSpec{"gctax.svg": gcTaxChart, "findwait.svg": findWaitChart} {
		name = filepath.Join(dir, name)
		if !res.has(spec.unit) {
			log.Printf("no %s figures in the input: %s left as it was", spec.unit, name)
			continue
		}
		if err := res.chart(name, spec); err != nil {
			return err
		}
	}
	_, err = io.WriteString(table, res.table())
	return err
}

// point is one store holding one number of sessions.
type point struct {
	store    string
	sessions int
}

// results are the figures of a benchmark run: every value each metric took
// at each point.
type results struct {
	stores   []string // in the order of the input
	sessions []int    // ascending
	values   map[point]map[string][]float64
}

// parse reads the result lines of BenchmarkGCTax and BenchmarkScaling, such
// as
//
//	BenchmarkScaling/store=memstore/n=1000-2   1   52.00 find-hit-ns   323.7 heap-B/session
//
// and ignores every other line.
func parse(r io.Reader) (*results, error) {
	res := &results{values: make(map[point]map[string][]float64)}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || !(strings.HasPrefix(fields[0], "BenchmarkGCTax/") || strings.HasPrefix(fields[0], "BenchmarkScaling/")) {
			continue
		}
		p, err := parseName(fields[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if len(fields)%2 != 0 {
			return nil, fmt.Errorf("line %d: a value without a unit: %q", line, sc.Text())
		}
		if res.values[p] == nil {
			res.values[p] = make(map[string][]float64)
		}
		for i := 2; i < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
			unit := fields[i+1]
			res.values[p][unit] = append(res.values[p][unit], v)
		}
		if !slices.Contains(res.stores, p.store) {
			res.stores = append(res.stores, p.store)
		}
		if !slices.Contains(res.sessions, p.sessions) {
			res.sessions = append(res.sessions, p.sessions)
		}
	}
	slices.Sort(res.sessions)
	return res, sc.Err()
}

// parseName returns the point a benchmark's name, such as
// BenchmarkGCTax/store=memstore/n=1000000-2, measured.
func parseName(name string) (point, error) {
	if i := strings.LastIndexByte(name, '-'); i > strings.LastIndexByte(name, '/') {
		name = name[:i] // the GOMAXPROCS suffix
	}
	var p point
	for _, elem := range strings.Split(name, "/")[1:] {
		k, v, _ := strings.Cut(elem, "=")
		switch k {
		case "store":
			p.store = v
		case "n":
			n, err := strconv.Atoi(v)
			if err != nil {
				return point{}, fmt.Errorf("benchmark %s: n=%s is not a number", name, v)
			}
			p.sessions = n
		}
	}
	if p.store == "" || p.sessions <= 0 {
		return point{}, fmt.Errorf("benchmark %s: want a name with store=NAME and n=SESSIONS", name)
	}
	return p, nil
}

// has reports whether the metric unit was measured anywhere.
func (res *results) has(unit string) bool {
	for _, metrics := range res.values {
		if len(metrics[unit]) > 0 {
			return true
		}
	}
	return false
}

// median returns the median of what metric unit measured at p, and false
// when it was not measured there.
func (res *results) median(p point, unit string) (float64, bool) {
	vs := slices.Clone(res.values[p][unit])
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2], true
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2, true
}

// chartSpec says what a chart shows: one metric against the sessions held,
// one line per store.
type chartSpec struct {
	title, yLabel string
	unit          string  // the metric
	scale         float64 // what a value of the metric is multiplied by
	logY          bool
	legendTop     bool // the legend's corner, on the left: where no line goes
}

var (
	gcTaxChart = chartSpec{
		title:  "GC tax: requests/s holding n sessions ÷ holding 1,000",
		yLabel: "throughput ratio (1 = no tax)",
		unit:   "throughput-ratio",
		scale:  1,
	}
	findWaitChart = chartSpec{
		title:     "Longest Find wait while the janitor removes half the sessions",
		yLabel:    "longest wait (ms)",
		unit:      "max-µs-sweep",
		scale:     1e-3,
		logY:      true,
		legendTop: true,
	}
)

// chart draws spec's chart into the SVG file name.
func (res *results) chart(name string, spec chartSpec) error {
	p := plot.New()
	p.Title.Text = spec.title
	p.X.Label.Text = "sessions held"
	p.Y.Label.Text = spec.yLabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = sessionTicks{}
	if spec.logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	} else {
		p.Y.Min = 0
	}
	p.Legend.Top, p.Legend.Left = spec.legendTop, true
	p.Add(plotter.NewGrid())
	for i, store := range res.stores {
		var xys plotter.XYs
		for _, n := range res.sessions {
			if v, ok := res.median(point{store, n}, spec.unit); ok {
				xys = append(xys, plotter.XY{X: float64(n), Y: v * spec.scale})
			}
		}
		if len(xys) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return fmt.Errorf("%s, store %s: %w", name, store, err)
		}
		line.Color, line.Dashes = plotutil.Color(i), plotutil.Dashes(i)
		points.Color, points.Shape = plotutil.Color(i), plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(store, line, points)
	}
	return p.Save(7*vg.Inch, 4.5*vg.Inch, name)
}

// sessionTicks marks a logarithmic axis of sessions held: each power of ten,
// labelled with its digits grouped, and the multiples of it in between.
type sessionTicks struct{}

// Ticks returns the ticks from lo to hi.
func (sessionTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for decade := math.Pow(10, math.Floor(math.Log10(lo))); decade <= hi; decade *= 10 {
		for m := 1.0; m < 10; m++ {
			v := m * decade
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 {
				t.Label = thousands(int(math.Round(v)))
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// table returns the markdown table of every figure: a row per number of
// sessions and store, "—" where a store has no such figure.
func (res *results) table() string {
	var b strings.Builder
	b.WriteString("| sessions | store | find-hit | parallel-mixed-90-10 | heap per session | GC tax: req/s held ÷ base | GC CPU held (base) | p99.9 request held (base) | sweep | longest Find wait in the sweep | WriteFile | ReadFile |\n")
	b.WriteString("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, n := range res.sessions {
		for _, store := range res.stores {
			p := point{store, n}
			fig := func(unit string, format func(float64) string) string {
				if v, ok := res.median(p, unit); ok {
					return format(v)
				}
				return "—"
			}
			pair := func(held, base string, format func(float64) string) string {
				heldFig, baseFig := fig(held, format), fig(base, format)
				if baseFig == "—" {
					return heldFig
				}
				return heldFig + " (" + baseFig + ")"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				thousands(n), store,
				fig("find-hit-ns", func(v float64) string { return fmt.Sprintf("%.0f ns", v) }),
				fig("mixed-ns", func(v float64) string { return fmt.Sprintf("%.0f ns", v) }),
				fig("heap-B/session", func(v float64) string { return fmt.Sprintf("%.0f B", v) }),
				fig("throughput-ratio", func(v float64) string { return fmt.Sprintf("%.2fx", v) }),
				pair("gc-cpu-%-held", "gc-cpu-%-base", func(v float64) string { return fmt.Sprintf("%.0f%%", v) }),
				pair("p99.9-µs-held", "p99.9-µs-base", micros),
				fig("sweep-ms", millis),
				fig("max-µs-sweep", micros),
				fig("write-ms", millis),
				fig("read-ms", millis))
		}
	}
	return b.String()
}

// thousands formats n with a comma between each group of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// micros formats a duration given in microseconds.
func micros(us float64) string { return duration(us * 1e-6) }

// millis formats a duration given in milliseconds.
func millis(ms float64) string { return duration(ms * 1e-3) }

// duration formats a duration given in seconds in the unit that suits it,
// with two or three significant digits.
func duration(s float64) string {
	switch {
	case s >= 1:
		return significant(s) + " s"
	case s >= 1e-3:
		return significant(s*1e3) + " ms"
	default:
		return significant(s*1e6) + " µs"
	}
}

// significant formats v, from 0 to 999, with no decimals from 10 up and one
// below.
func significant(v float64) string {
	if v >= 10 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}
