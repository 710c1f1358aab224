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
	"path/filepath"
	"strconv"
	"strings"
)

// The durable mode's files, documented byte by byte in FORMAT.md. A
// directory holds generations: a base (a snapshot, as WriteFile writes it)
// and the log of every change made after the base was begun.
//
//	base.GGGGGGGGGGGGGGGG  the sessions as of generation G's start (absent for the first)
//	log.GGGGGGGGGGGGGGGG   the changes made during generation G
//
// A log is its start, then records:
//
//	start:  logMagic (8 bytes) | logVersion (1 byte) | store (16 bytes)
//	record: payload length (uint32) | CRC-32C of those 4 bytes | CRC-32C of the payload | payload
//	put:    opPut | token length (uvarint) | token | expiry (int64 Unix ns) | data
//	delete: opDelete | token
//
// The length has a checksum of its own so that a corrupt length is told
// from a record cut short by a crash. Version 1's start has no store.
const (
	logMagic        = "\x89MEMSLOG"
	logVersion      = 2 // the version written; versions from 1 are read
	logStartLen     = len(logMagic) + 1 + len(storeID{})
	recordHeaderLen = 12
	opPut           = 1
	opDelete        = 2
)

// maxPayload is the largest payload the store writes: a put's op byte,
// expiry and record (see checkSize), or a delete's op byte and token (see
// queueDeleteLocked). A longer length is damage, and is never allocated.
const maxPayload = 1 + 8 + maxSession

// fileKind is what a file of the directory holds.
type fileKind string

const (
	baseFile fileKind = "base"
	logFile  fileKind = "log"
)

// genDigits is how many hex digits name a generation, so that names sort
// as the generations do.
const genDigits = 16

// maxGen is the highest generation the store names a file with: a name of
// a higher one is not the store's, and is left alone. It would take 2^63
// rewrites to get there.
const maxGen = math.MaxInt64

// genHeadroom is how many generations Open requires to be left above an
// entry by the name of a store's file that is not a regular file (a
// directory, a link: nothing the store wrote, whose generation the store
// names past): one closer to maxGen is refused at the first Open, so that
// the store never runs out of names for its next files, nor wraps around,
// in any lifetime. A regular file is the store's, or refused as another's.
const genHeadroom = 1 << 32

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
	return fileKind(kind), gen, err == nil && gen <= maxGen
}

// appendLogStart appends the start of a log of store to b.
func appendLogStart(b []byte, store storeID) []byte {
	return append(append(append(b, logMagic...), logVersion), store[:]...)
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

// logHeader is what the start of a log says.
type logHeader struct {
	version byte
	store   storeID // version 2 on
}

// readLog reads the log in f, a regular file of size bytes, and calls apply
// for each of its records, in order, once check has accepted its start. A
// log cut short by a crash ends in a torn record: a record that runs past
// the end of the file, or whose checksums fail where nothing but zeros
// follows what of it can be trusted (a file system may extend a file before
// the data in it reaches the disk). readLog drops it and reports torn. A
// file that is a prefix of a start, then zeros, is an empty log cut short
// as it was created: readLog reports it as torn if it holds any byte, and
// leaves its start to the caller to judge (see cutShortStart). Any other
// bad record, or a bad start, means the file is damaged: readLog returns an
// error wrapping ErrBadSnapshot that names f and gives the record's offset,
// having called apply for the records before it.
//
// readLog reads the file in a stream, holding at most one record at a time
// (and a 64 KiB buffer), and reads no more than size bytes: a longer file
// ends, for it, there. A length that the bytes left cannot hold is a torn
// record, never an allocation; the zeros that make a record torn are read
// in a fixed buffer, skipping a sparse file's holes where the system tells
// where they are.
func readLog(f *os.File, size int64, check func(logHeader) error, apply func(change)) (torn bool, err error) {
	s := newStream(io.NewSectionReader(f, 0, size), size) // ReadAt: zerosFrom may move f's offset
	s.fill(logStartLen)                                   // fewer at the end of a short file
	if n := cutShortStart(s.buf[s.pos:s.end]); n >= 0 {
		if zeros, err := zerosFrom(f, int64(n), size); err != nil || zeros {
			return size > 0, err
		}
	}
	damaged := func(off int64, detail string, args ...any) error {
		return &badInput{kind: "log file", path: f.Name(), off: off, detail: fmt.Sprintf(detail, args...)}
	}
	var h logHeader
	start := s.buf[s.pos:s.end]
	if len(start) <= len(logMagic) || string(start[:len(logMagic)]) != logMagic {
		return false, damaged(0, "not a memstore log (starts %q)", start[:min(len(start), len(logMagic))])
	}
	switch h.version = start[len(logMagic)]; h.version {
	case 1:
		s.take(len(logMagic) + 1)
	case logVersion:
		b, ok := s.take(logStartLen)
		if !ok {
			return false, damaged(0, "log start cut short, followed by other bytes than zeros")
		}
		h.store = storeID(b[len(logMagic)+1:])
	default:
		return false, damaged(int64(len(logMagic)), "unknown log version %d (this package reads versions 1 to %d)", h.version, logVersion)
	}
	if err := check(h); err != nil {
		return false, err
	}
	for s.fill(1) {
		off := s.read - int64(s.avail())
		payload, trusted, bad := nextRecord(s)
		if bad != "" {
			switch bad {
			case badRunsPastEnd:
				return true, nil
			case badTooLong: // a crash cannot write a length whose checksum passes
				return false, damaged(off, "%s in the record", bad)
			}
			if zeros, err := zerosFrom(f, off+int64(trusted), size); err != nil || zeros {
				return zeros, err
			}
			return false, damaged(off, "%s in the record", bad)
		}
		c, ok := parseChange(payload)
		if !ok {
			return false, damaged(off, "malformed record")
		}
		apply(c)
		s.take(recordHeaderLen + len(payload))
	}
	if s.err != io.EOF {
		return false, s.err
	}
	return false, nil
}

// cutShortStart returns how many of the bytes b, the first of a file, are a
// log's start cut short, if they are one followed by nothing but zeros in
// b, and -1 if not. A start holds no zero byte (see newStoreID), so its
// end is found by trimming the zeros.
func cutShortStart(b []byte) int {
	w := bytes.TrimRight(b, "\x00")
	switch {
	case len(w) <= len(logMagic):
		if string(w) != logMagic[:len(w)] {
			return -1
		}
	case len(w) >= logStartLen || string(w[:len(logMagic)]) != logMagic || w[len(logMagic)] != logVersion:
		return -1 // a start of version 1 is 9 bytes: whole, or a prefix of the magic
	}
	return len(w)
}

// Why a record is bad.
const (
	badRunsPastEnd = "record runs past the end of the file"
	badLength      = "length checksum mismatch"
	badPayload     = "payload checksum mismatch"
	badTooLong     = "length larger than any record the store writes"
)

// nextRecord returns the payload of the record at the start of what s has
// not consumed, without consuming it, or why it is bad and how many of its
// bytes can be trusted not to be another record's: its length and the
// length's checksum, if that fails, and else the whole record, as long as
// the length says. A record whose length passes its checksum but runs past
// the end of the input was cut short. The payload is valid until s reads
// again.
func nextRecord(s *stream) (payload []byte, trusted int, bad string) {
	const lengthLen = 8 // the length and its checksum
	h, ok := s.peek(recordHeaderLen)
	if !ok {
		return nil, s.avail(), badRunsPastEnd
	}
	size := binary.BigEndian.Uint32(h[0:])
	if crc32.Checksum(h[0:4], castagnoli) != binary.BigEndian.Uint32(h[4:]) {
		return nil, lengthLen, badLength
	}
	if !s.fits(recordHeaderLen + uint64(size)) {
		return nil, s.avail(), badRunsPastEnd
	}
	if size > maxPayload {
		return nil, lengthLen, badTooLong
	}
	end := recordHeaderLen + int(size)
	b, ok := s.peek(end)
	if !ok {
		return nil, s.avail(), badRunsPastEnd // the file shrank since it was opened
	}
	payload = b[recordHeaderLen:end]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(b[8:]) {
		return nil, end, badPayload
	}
	return payload, end, ""
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

// zerosFrom reports whether the bytes of f from off up to size are all
// zeros, reading them in a fixed buffer and skipping the holes of a sparse
// file where the system tells where they are (see nextData): a log
// extended by a terabyte of holes, as a mistyped truncate leaves it, is
// checked at once. Bytes past size, or missing since f was opened, do not
// count.
func zerosFrom(f *os.File, off, size int64) (bool, error) {
	var buf []byte
	for off < size {
		if data, ok := nextData(f, off); ok {
			if off = data; off >= size {
				return true, nil
			}
		}
		if buf == nil {
			buf = make([]byte, readSize)
		}
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if !isZeros(buf[:n]) {
			return false, nil
		}
		off += int64(n)
		switch {
		case err == io.EOF:
			return true, nil
		case err != nil:
			return false, err
		}
	}
	return true, nil
}

// createLog creates the log of generation gen in dir, with its start for
// store id, synced, its directory entry too. On an error it leaves nothing
// behind.
func createLog(dir string, gen uint64, id storeID) (*os.File, error) {
	f, err := newLogFile(dir, gen)
	if err != nil {
		return nil, err
	}
	if err := writeLogStart(f, dir, id); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

// newLogFile creates the file of the log of generation gen in dir, empty.
// O_EXCL fails on any entry by its name, a link included.
func newLogFile(dir string, gen uint64) (*os.File, error) {
	if gen > maxGen {
		return nil, fmt.Errorf("memstore: %s: no generation left after %x", dir, uint64(maxGen))
	}
	name := filepath.Join(dir, fileName(logFile, gen))
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND|noFollow, 0o600)
}

// writeLogStart writes the start of a log of store id to f, a new file in
// dir, and syncs it and its directory entry.
func writeLogStart(f *os.File, dir string, id storeID) error {
	_, err := f.Write(appendLogStart(nil, id))
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = syncDir(dir)
	}
	return err
}
