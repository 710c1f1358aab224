// SPDX-License-Identifier: MIT

package integration

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// tableFile is the document whose conformance table TestStores keeps true.
const tableFile = "../docs/comparison.md"

// conformanceHeading is the heading of the section of tableFile whose first
// table is the conformance table: a row per storetest rule, in the order of
// the kit's documentation, and a column per store, in the order of stores.
const conformanceHeading = "## Conformance of the stores compared"

// conformanceTable is the conformance table of tableFile.
type conformanceTable struct {
	rules []string            // the rules, as their rows name them
	cells map[string][]string // by rule: its cells, one per store
}

// readConformanceTable returns tableFile's conformance table, failing t if
// it cannot find it or it does not have one column per store.
func readConformanceTable(t *testing.T) conformanceTable {
	t.Helper()
	f, err := os.Open(tableFile)
	if err != nil {
		t.Fatalf("reading the conformance table: %v", err)
	}
	defer f.Close()
	table := conformanceTable{cells: make(map[string][]string)}
	var inSection, inTable bool
	rows := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == conformanceHeading:
			inSection = true
			continue
		case !inSection:
			continue
		case strings.HasPrefix(line, "|"):
			inTable = true
		case inTable:
			// The table has ended.
			if len(table.rules) == 0 {
				t.Fatalf("%s: the table under %q has no rule rows", tableFile, conformanceHeading)
			}
			return table
		default:
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if len(cells) != len(stores)+1 {
			t.Fatalf("%s: conformance table row %q has %d cells; want %d, the rule and one per store of stores (%d)",
				tableFile, line, len(cells), len(stores)+1, len(stores))
		}
		rows++
		if rows <= 2 { // the header and the separator
			continue
		}
		rule := strings.Trim(cells[0], "`")
		table.rules = append(table.rules, rule)
		table.cells[rule] = cells[1:]
	}
	t.Fatalf("%s: no table under %q", tableFile, conformanceHeading)
	return table
}

// cell returns what the table says of store number i (in stores) and rule.
func (c conformanceTable) cell(i int, rule string) string {
	return c.cells[rule][i]
}

// cellMatches reports whether cell is what the conformance table must say
// of store k and rule, as wantCell describes it.
func cellMatches(k storeKind, rule, cell string) bool {
	want, prefix := wantCell(k, rule)
	return cell == want || prefix && strings.HasPrefix(cell, want)
}

// wantCell returns what the conformance table must say of store k and rule:
// "pass"; "**fails**" for a rule the store is known to break; or, for a rule
// storetest.Run skips for it, "skipped: " followed by why (prefix is true).
func wantCell(k storeKind, rule string) (want string, prefix bool) {
	if _, ok := k.breaks[rule]; ok {
		return "**fails**", false
	}
	if _, ok := k.skips[rule]; ok {
		return "skipped: ", true
	}
	return "pass", false
}
