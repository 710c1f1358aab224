// SPDX-License-Identifier: MIT

package memstore

// A changeQueue holds the store's changes that wait for the writer, in the
// order they were made. Every Commit adds one, so they are held the way sessions are:
// without a pointer per change, so that the garbage collector has next to
// nothing to scan and no write barrier to run, and a change takes 24 bytes.
// A Commit's change names its record by its chunk, listed once per run of
// records in it, and its place there: chunks are never modified, and the
// list keeps them alive until the record is written. A Delete's token is
// copied, end to end with the others.
type changeQueue struct {
	list   []queuedChange
	chunks []*chunk // the chunks of the Commits' records
	tokens []byte   // the Deletes' tokens
	size   int      // about the bytes they take in the log
}

// queuedChange is one change in a changeQueue.
type queuedChange struct {
	chunk  uint32 // the record's chunk, its place in changeQueue.chunks; deleted for a Delete
	offset uint32 // where the record starts in its chunk, or the token in changeQueue.tokens
	size   uint32 // the size of the record, or of the token
	expiry int64  // a Commit's expiry, in Unix nanoseconds
}

// deleted is queuedChange.chunk of a Delete.
const deleted = ^uint32(0)

// addPut adds a Commit whose record is the one reserved in r.
func (cs *changeQueue) addPut(r reservation, expiry int64) {
	n := len(cs.chunks)
	if n == 0 || cs.chunks[n-1] != r.c {
		cs.chunks = append(cs.chunks, r.c)
		n++
	}
	cs.list = append(cs.list, queuedChange{chunk: uint32(n - 1), offset: uint32(r.off), size: uint32(len(r.buf)), expiry: expiry})
	cs.size += recordHeaderLen + 9 + len(r.buf)
}

// addDelete adds a Delete of token, which is at most maxSession bytes.
func (cs *changeQueue) addDelete(token string) {
	cs.list = append(cs.list, queuedChange{chunk: deleted, offset: uint32(len(cs.tokens)), size: uint32(len(token))})
	cs.tokens = append(cs.tokens, token...)
	cs.size += recordHeaderLen + 1 + len(token)
}

// appendTo appends the log's record of c, one of cs, to b.
func (cs *changeQueue) appendTo(b []byte, c queuedChange) []byte {
	if c.chunk == deleted {
		return appendDelete(b, cs.tokens[c.offset:c.offset+c.size])
	}
	token, data, _ := splitRecord(cs.chunks[c.chunk].buf[c.offset : c.offset+c.size])
	return appendPut(b, token, data, c.expiry)
}

// reset empties cs, letting go of its chunks, and of its room if a pile-up
// behind a slow disk grew it past what the writer keeps.
func (cs *changeQueue) reset() {
	clear(cs.chunks)
	*cs = changeQueue{list: cs.list[:0], chunks: cs.chunks[:0], tokens: cs.tokens[:0]}
	if cap(cs.list) > maxKeptChanges {
		cs.list = nil
	}
	if cap(cs.tokens) > maxKeptTokens {
		cs.tokens = nil
	}
}

// maxKeptChanges is the most changeQueue the writer keeps room for between
// writes, about 3 MB, room for what maxPending lets pile up.
const maxKeptChanges = 1 << 17

// maxKeptTokens is the most bytes of Deletes' tokens the writer keeps room
// for between writes.
const maxKeptTokens = writeAt
