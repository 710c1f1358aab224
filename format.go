// SPDX-License-Identifier: MIT

package memstore

import (
	"hash/crc32"
	"math"
	"time"
)

// The snapshot format, documented byte by byte in FORMAT.md:
//
//	header:  magic (8 bytes) | version (1 byte) | store (16 bytes) | entry count (uint64)
//	entry:   token length (uvarint) | token | expiry (int64 Unix ns) | data length (uvarint) | data
//	trailer: CRC-32C of every byte before it (uint32)
//
// Fixed-width integers are big-endian. Version 1 has no store field.
const (
	magic           = "\x89MEMSNAP" // the high first byte marks the file as binary, not text
	version         = 2             // the version written: bumped by any change to the format
	firstVersion    = 1             // the oldest version read: a reader reads every version up to its own
	checksumLen     = 4
	minEntryLen     = 1 + 8 + 1 // the shortest entry: empty token and data
	writeBufferSize = 64 << 10  // one write to w per 64 KiB, however small the sessions
)

// storeID is the identity of a durable store's directory, fixed when the
// directory is first used and written into each of its files, so that Open
// tells its own files from another store's. A store from New has none: the
// zero storeID. Generated identities have no zero byte (see newStoreID).
type storeID [16]byte

// castagnoli is the CRC-32C table: hardware-accelerated on amd64 and arm64,
// and better at catching errors than the IEEE polynomial.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// latestUnixNano is the latest time whose Unix nanoseconds fit in an int64,
// in 2262. A session committed to live longer is saved as expiring then.
var latestUnixNano = time.Unix(0, math.MaxInt64)

// unixNano is t.UnixNano, clamped: a deadline saturated by addSaturating
// lies centuries beyond 2262, where t.UnixNano would overflow.
func unixNano(t time.Time) int64 {
	if t.After(latestUnixNano) {
		return math.MaxInt64
	}
	return t.UnixNano()
}
