// SPDX-License-Identifier: MIT

package memstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// The durable mode's files, documented byte by byte in FORMAT.md. A
// directory holds generations: a base (a snapshot, as WriteFile writes it)
// and the log of every change made after the base was begun.
//
//	base.GGGGGGGGGGGGGGGG  the sessions as of generation G's start (absent for the first)
//	log.GGGGGGGGGGGGGGGG   the changes made during generation G
//	LOCK                   held locked while a store has the directory open
//
// A log is its start, then records:
//
//	start:  logMagic (8 bytes) | logVersion (1 byte)
//	record: payload length (uint32) | CRC-32C of those 4 bytes | CRC-32C of the payload | payload
//	put:    opPut | token length (uvarint) | token | expiry (int64 Unix ns) | data
//	delete: opDelete | token
//
// The length has a checksum of its own so that a corrupt length is told
// from a record cut short by a crash.
const (
	logMagic        = "\x89MEMSLOG"
	logVersion      = 1
	logStartLen     = len(logMagic) + 1
	recordHeaderLen = 12
	opPut           = 1
	opDelete        = 2
)

// fileKind is what a file of the directory holds.
type fileKind string

const (
	baseFile fileKind = "base"
	logFile  fileKind = "log"
)

// lockName is the file in the directory whose lock an open store holds.
const lockName = "LOCK"

// genDigits is how many hex digits name a generation, so that names sort
// as the generations do.
const genDigits = 16

// fileName returns the name of the kind of file of generation gen.
func fileName(kind fileKind, gen uint64) string {
	return fmt.Sprintf("%s.%0*x", kind, genDigits, gen)
}

// parseFileName returns the kind and generation of a file of the directory
// named name, and false for any other name.
func parseFileName(name string) (fileKind, uint64, bool) {
	kind, hex, ok := strings.Cut(name, ".")
	if !ok || (fileKind(kind) != baseFile && fileKind(kind) != logFile) || len(hex) != genDigits || strings.ToLower(hex) != hex {
		return "", 0, false
	}
	gen, err := strconv.ParseUint(hex, 16, 64)
	// The last generation has no next: a file claiming it is not the
	// store's (it would take 2^64 rewrites to get there).
	return fileKind(kind), gen, err == nil && gen < math.MaxUint64
}

// appendLogStart appends the start of a log to b.
func appendLogStart(b []byte) []byte {
	return append(append(b, logMagic...), logVersion)
}

// appendPut appends the record of a Commit to b.
func appendPut(b, token, data []byte, expiry int64) []byte {
	b, start := beginRecord(b)
	b = append(b, opPut)
	b = binary.AppendUvarint(b, uint64(len(token)))
	b = append(b, token...)
	b = binary.BigEndian.AppendUint64(b, uint64(expiry))
	b = append(b, data...)
	return endRecord(b, start)
}

// appendDelete appends the record of a Delete to b.
func appendDelete(b, token []byte) []byte {
	b, start := beginRecord(b)
	b = append(b, opDelete)
	b = append(b, token...)
	return endRecord(b, start)
}

// beginRecord appends room for a record's header to b, and returns where the
// record starts.
func beginRecord(b []byte) ([]byte, int) {
	return append(b, make([]byte, recordHeaderLen)...), len(b)
}

// endRecord fills in the header of the record at start, whose payload ends b.
func endRecord(b []byte, start int) []byte {
	h := b[start : start+recordHeaderLen]
	payload := b[start+recordHeaderLen:]
	binary.BigEndian.PutUint32(h[0:], uint32(len(payload)))
	binary.BigEndian.PutUint32(h[4:], crc32.Checksum(h[0:4], castagnoli))
	binary.BigEndian.PutUint32(h[8:], crc32.Checksum(payload, castagnoli))
	return b
}

// change is one record of a log, as read.
type change struct {
	put    bool
	token  []byte
	expiry int64  // Unix nanoseconds; puts only
	data   []byte // puts only
}

// readLog reads the log in the named file and calls apply for each of its
// records, in order. A log cut short by a crash ends in a torn record: a
// record that runs past the end of the file, or whose checksums fail where
// nothing but zeros follows what of it can be trusted (a file system may
// extend a file before the data in it reaches the disk), or a start cut
// short so. readLog drops it and reports torn. Any other bad record, or a
// bad start, means the file is damaged: readLog returns an error wrapping
// ErrBadSnapshot that names the file and the record's offset, having called
// apply for the records before it.
//
// readLog reads no more than the file's size when opened: a longer file
// ends, for it, there.
func readLog(name string, apply func(change)) (torn bool, err error) {
	b, err := readWhole(name)
	if err != nil {
		return false, err
	}
	torn, err = decodeLog(b, apply)
	if err != nil {
		return false, fmt.Errorf("%s: %w", name, err)
	}
	return torn, nil
}

// readWhole returns the bytes of the named file, reading no more than its
// size when opened.
func readWhole(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, info.Size())
	n, err := io.ReadFull(f, b)
	if err == io.ErrUnexpectedEOF {
		err = nil // the file shrank since: what was read is the file
	}
	return b[:n], err
}

// decodeLog is readLog for a log held whole in b.
func decodeLog(b []byte, apply func(change)) (torn bool, err error) {
	if written := bytes.TrimRight(b, "\x00"); len(written) < logStartLen && bytes.HasPrefix(appendLogStart(nil), written) {
		// A crash just after the file was created: a prefix of the start,
		// and maybe the zeros of a file extended before its data was
		// written. The start holds no zero byte.
		return len(b) > 0, nil
	}
	if len(b) < logStartLen || string(b[:len(logMagic)]) != logMagic {
		return false, fmt.Errorf("%w: not a memstore log (starts %q)", ErrBadSnapshot, b[:min(len(b), len(logMagic))])
	}
	if v := b[len(logMagic)]; v != logVersion {
		return false, fmt.Errorf("%w: unknown log version %d (this package reads version %d)", ErrBadSnapshot, v, logVersion)
	}
	for off := logStartLen; off < len(b); {
		rest := b[off:]
		payload, trusted, bad := nextRecord(rest)
		if bad != "" {
			if bad == badRunsPastEnd || isZeros(rest[trusted:]) {
				return true, nil
			}
			return false, fmt.Errorf("%w: %s in the record at offset %d", ErrBadSnapshot, bad, off)
		}
		c, ok := parseChange(payload)
		if !ok {
			return false, fmt.Errorf("%w: malformed record at offset %d", ErrBadSnapshot, off)
		}
		apply(c)
		off += recordHeaderLen + len(payload)
	}
	return false, nil
}

// Why a record is bad.
const (
	badRunsPastEnd = "record runs past the end of the file"
	badLength      = "length checksum mismatch"
	badPayload     = "payload checksum mismatch"
)

// nextRecord returns the payload of the record that starts b, or why it is
// bad and how many of its bytes can be trusted not to be another record's:
// its length and the length's checksum, if that fails, and else the whole
// record, as long as the length says. A record whose length passes its
// checksum but runs past the end of b was cut short.
func nextRecord(b []byte) (payload []byte, trusted int, bad string) {
	const lengthLen = 8 // the length and its checksum
	if len(b) < recordHeaderLen {
		return nil, len(b), badRunsPastEnd
	}
	size := binary.BigEndian.Uint32(b[0:])
	if crc32.Checksum(b[0:4], castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return nil, lengthLen, badLength
	}
	end := recordHeaderLen + int64(size)
	if end > int64(len(b)) {
		return nil, len(b), badRunsPastEnd
	}
	payload = b[recordHeaderLen:end]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(b[8:]) {
		return nil, int(end), badPayload
	}
	return payload, int(end), ""
}

// parseChange decodes a record's payload, whose checksum has passed.
func parseChange(p []byte) (change, bool) {
	if len(p) == 0 {
		return change{}, false
	}
	switch op, p := p[0], p[1:]; op {
	case opDelete:
		return change{token: p}, true
	case opPut:
		n, size := binary.Uvarint(p)
		if size <= 0 || n > uint64(len(p)-size) || uint64(len(p)-size)-n < 8 {
			return change{}, false
		}
		p = p[size:]
		token, p := p[:n], p[n:]
		return change{put: true, token: token, expiry: int64(binary.BigEndian.Uint64(p)), data: p[8:]}, true
	}
	return change{}, false
}

// isZeros reports whether b holds nothing but zeros.
func isZeros(b []byte) bool {
	return len(bytes.TrimRight(b, "\x00")) == 0
}
