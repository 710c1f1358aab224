// SPDX-License-Identifier: MIT

//go:build !unix

package integration

import (
	"os/exec"
	"testing"
)

// serverAccount is the account a server that refuses to run as root runs as
// when the tests run as root: on systems other than Unix, there is none.
type serverAccount struct{}

// unprivilegedAccount returns nil: the server runs as the tests do.
func unprivilegedAccount(testing.TB) *serverAccount { return nil }

// own does nothing.
func (*serverAccount) own(testing.TB, string) {}

// runs does nothing.
func (*serverAccount) runs(*exec.Cmd) {}
