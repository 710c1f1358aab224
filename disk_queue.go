// SPDX-License-Identifier: MIT

package memstore

// A changeQueue holds the store's changes that wait for the writer, in the
// order they were made. It holds no pointer per change, as the index holds
// none per session, so that it costs the garbage collector nothing however
// long it grows behind a slow disk: a Commit's change names its record by
// its chunk, listed once per run of records in it, and its place there
// (chunks are never modified, and the list keeps them alive until the
// record is written); a Delete's token is copied, end to end with the
// others'.
type changeQueue struct {
	list   []queuedChange
	chunks []*chunk // the chunks of the Commits' records
	tokens []byte   // the Deletes' tokens
	size   int      // about the bytes they take in the log
}

// queuedChange is one change in a changeQueue, in 24 bytes.
type queuedChange struct {
	chunk  uint32 // the record's chunk, its place in changeQueue.chunks; deleteMark for a Delete
	size   uint32 // the size of the record, or of the Delete's token
	offset int64  // where the record starts in its chunk, or the token in changeQueue.tokens
	expiry int64  // a Commit's expiry, in Unix nanoseconds
}

// deleteMark is queuedChange.chunk of a Delete.
const deleteMark = ^uint32(0)

// addPut adds a Commit whose record is the one reserved in r.
func (cs *changeQueue) addPut(r reservation, expiry int64) {
	n := len(cs.chunks)
	if n == 0 || cs.chunks[n-1] != r.c {
		cs.chunks = append(cs.chunks, r.c)
		n++
	}
	cs.list = append(cs.list, queuedChange{chunk: uint32(n - 1), size: uint32(len(r.buf)), offset: int64(r.off), expiry: expiry})
	cs.size += recordHeaderLen + 9 + len(r.buf)
}

// addDelete adds a Delete of token, which is at most maxSession bytes.
func (cs *changeQueue) addDelete(token string) {
	cs.list = append(cs.list, queuedChange{chunk: deleteMark, size: uint32(len(token)), offset: int64(len(cs.tokens))})
	cs.tokens = append(cs.tokens, token...)
	cs.size += recordHeaderLen + 1 + len(token)
}

// appendTo appends the log's record of c, one of cs, to b.
func (cs *changeQueue) appendTo(b []byte, c queuedChange) []byte {
	end := c.offset + int64(c.size)
	if c.chunk == deleteMark {
		return appendDelete(b, cs.tokens[c.offset:end])
	}
	token, data, _ := splitRecord(cs.chunks[c.chunk].buf[c.offset:end])
	return appendPut(b, token, data, c.expiry)
}

// reset empties cs, letting go of its chunks, and of its room if it grew
// past what the writer keeps. (chunks, never longer than list, goes with
// it.)
func (cs *changeQueue) reset() {
	clear(cs.chunks)
	*cs = changeQueue{list: cs.list[:0], chunks: cs.chunks[:0], tokens: cs.tokens[:0]}
	if cap(cs.list) > maxKeptChanges {
		cs.list, cs.chunks = nil, nil
	}
	if cap(cs.tokens) > maxKeptTokens {
		cs.tokens = nil
	}
}

// maxKeptChanges is the most changes a changeQueue keeps room for between
// writes: the changes of a wake, a Commit's taking more than 16 bytes of
// log. A pile-up behind a slow disk grows it further, for that once.
const maxKeptChanges = wakeAt / 16

// maxKeptTokens is the most bytes of Deletes' tokens a changeQueue keeps
// room for between writes.
const maxKeptTokens = writeAt
