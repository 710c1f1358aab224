// SPDX-License-Identifier: MIT

package storetest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/gob"
	"fmt"
	"time"
)

// newToken returns 43 characters of base64 from crypto/rand, shaped like
// scs's tokens (32 random bytes in unpadded URL-safe base64).
func newToken() string {
	var b [32]byte
	rand.Read(b[:]) // never returns an error: it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// session returns data shaped like a real scs session: what scs's default
// GobCodec makes of a deadline and a map of values.
func session(deadline time.Time, values map[string]any) []byte {
	aux := &struct {
		Deadline time.Time
		Values   map[string]any
	}{deadline, values}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&aux); err != nil {
		panic(fmt.Sprintf("storetest: encoding a session: %v", err))
	}
	return buf.Bytes()
}

// data returns a session whose one value is label: sessions made with
// different labels differ, and the same label always gives the same bytes.
func data(label string) []byte {
	return session(time.Date(2035, time.May, 1, 12, 0, 0, 0, time.UTC), map[string]any{"label": label})
}

// binaryData returns data holding every byte value, twice.
func binaryData() []byte {
	b := make([]byte, 512)
	for i := range b {
		b[i] = byte(255 - i)
	}
	return b
}

// show formats data for a failure message. Of a long slice it shows the end,
// where a gob-encoded session's values are.
func show(b []byte) string {
	switch {
	case b == nil:
		return "nil"
	case len(b) <= 48:
		return fmt.Sprintf("%q", b)
	default:
		return fmt.Sprintf("%d bytes ending %q", len(b), b[len(b)-32:])
	}
}

// showToken formats a token for a failure message.
func showToken(tok string) string {
	if len(tok) <= 64 {
		return fmt.Sprintf("%q", tok)
	}
	return fmt.Sprintf("%q... (%d characters)", tok[:32], len(tok))
}
