// SPDX-License-Identifier: MIT

package memstore

import (
	"encoding/binary"
	"hash/crc32"
	"io"
)

// Reading snapshots and logs in a stream. A length read from an input is a
// claim, not a fact: the stream's buffer grows with the bytes that have
// actually arrived, never with what a length says is coming, so that an
// input of any size, or one that lies, costs no more memory than the
// largest item the caller asks to hold at once.

// Sizes of the stream's buffer.
const (
	firstReadSize = 512      // the first buffer: a small input allocates little
	readSize      = 64 << 10 // the buffer's size once the input has shown it holds that much
)

// maxEmptyReads is how many reads in a row may return no byte and no error
// before the stream gives up, as bufio does, rather than spin on a broken
// reader.
const maxEmptyReads = 100

// stream reads an input ahead in a buffer and hands out its bytes item by
// item. Slices it returns point into the buffer and are valid until the next
// call that reads. It keeps the CRC-32C of the bytes consumed, for the
// snapshot's trailer.
type stream struct {
	r      io.Reader
	buf    []byte
	pos    int    // buf[pos:end] is read and not consumed
	end    int    //
	summed int    // buf[:summed] is in sum: consumed bytes are summed lazily, in large pieces
	sum    uint32 // the CRC-32C of every byte consumed and summed
	read   int64  // bytes read from r
	left   int64  // bytes r holds beyond those read, if known (a file's size); -1 if not
	err    error  // the error that ended reading, io.EOF at the end; nil while r may hold more
}

// newStream returns a stream of r, which holds size bytes, or -1 if that is
// not known.
func newStream(r io.Reader, size int64) *stream {
	return &stream{r: r, left: size}
}

// avail returns how many bytes are read and not consumed.
func (s *stream) avail() int { return s.end - s.pos }

// fill reads until at least n bytes are read and not consumed, and reports
// whether there are. It returns false at the end of the input or on an
// error of the reader (s.err then says which); the bytes read stay
// available.
func (s *stream) fill(n int) bool {
	return s.fillUpTo(n, false)
}

// fillOnly is fill, asking r for no byte beyond the n: an input refused on
// its first bytes is not read further. n must be at most firstReadSize.
func (s *stream) fillOnly(n int) bool {
	return s.fillUpTo(n, true)
}

func (s *stream) fillUpTo(n int, only bool) bool {
	for empty := 0; s.avail() < n; {
		if s.err != nil {
			return false
		}
		if s.end == len(s.buf) || (only && s.pos+n > len(s.buf)) {
			s.makeRoom()
		}
		to := len(s.buf)
		if only {
			to = s.pos + n
		}
		k, err := s.r.Read(s.buf[s.end:to])
		s.end += k
		s.read += int64(k)
		if s.left >= 0 {
			s.left = max(s.left-int64(k), 0)
		}
		switch {
		case err != nil:
			s.err = err
		case k > 0:
			empty = 0
		default:
			if empty++; empty >= maxEmptyReads {
				s.err = io.ErrNoProgress
			}
		}
	}
	return true
}

// makeRoom makes room at the end of the buffer for a read. It moves the
// bytes not consumed to the front, and grows the buffer only when they fill
// more than half of it, or to readSize once as many bytes have been read:
// so the buffer is never more than twice the bytes the caller asked to hold
// at once, or than the input has given, and readSize.
func (s *stream) makeRoom() {
	s.sumConsumed()
	live := s.avail()
	size := len(s.buf)
	switch {
	case size == 0:
		size = firstReadSize
	case live > size/2:
		size *= 2
	case size < readSize && s.read >= int64(size):
		size = min(2*size, readSize)
	}
	if size == len(s.buf) {
		copy(s.buf, s.buf[s.pos:s.end])
	} else {
		grown := make([]byte, size)
		copy(grown, s.buf[s.pos:s.end])
		s.buf = grown
	}
	s.pos, s.end, s.summed = 0, live, 0
}

// sumConsumed adds the bytes consumed since the last call to the checksum.
func (s *stream) sumConsumed() {
	if s.summed < s.pos {
		s.sum = crc32.Update(s.sum, castagnoli, s.buf[s.summed:s.pos])
	}
	s.summed = s.pos
}

// checksum returns the CRC-32C of every byte consumed.
func (s *stream) checksum() uint32 {
	s.sumConsumed()
	return s.sum
}

// peek returns the next n bytes, without consuming them, or false if the
// input ends before (or the reader fails: see s.err).
func (s *stream) peek(n int) ([]byte, bool) {
	if !s.fill(n) {
		return nil, false
	}
	return s.buf[s.pos : s.pos+n], true
}

// take returns the next n bytes and consumes them.
func (s *stream) take(n int) ([]byte, bool) {
	b, ok := s.peek(n)
	s.pos += len(b)
	return b, ok
}

// skip consumes the next n bytes without holding them all at once, and
// reports whether the input held them.
func (s *stream) skip(n uint64) bool {
	for n > 0 {
		if !s.fill(1) {
			return false
		}
		k := int(min(uint64(s.avail()), n))
		s.pos += k
		s.sumConsumed() // the bytes leave the buffer at the next read
		n -= uint64(k)
	}
	return true
}

// uvarintAt decodes the uvarint that starts off bytes after the next
// unconsumed byte, without consuming anything. size is its length in
// bytes, 0 if the input ends within it, negative if it overflows 64 bits.
func (s *stream) uvarintAt(off int) (v uint64, size int) {
	s.fill(off + binary.MaxVarintLen64) // fewer bytes at the end of the input
	if s.avail() <= off {
		return 0, 0
	}
	return binary.Uvarint(s.buf[s.pos+off : s.end])
}

// fits reports whether n more bytes may be in the input after those read
// and not consumed: always, if its size is unknown.
func (s *stream) fits(n uint64) bool {
	if s.left < 0 {
		return true
	}
	return n <= uint64(s.avail())+uint64(s.left)
}

// remaining returns how many bytes of the input are not consumed, if its
// size is known, and -1 if not.
func (s *stream) remaining() int64 {
	if s.left < 0 {
		return -1
	}
	return int64(s.avail()) + s.left
}
