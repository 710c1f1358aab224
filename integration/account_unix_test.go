// SPDX-License-Identifier: MIT

//go:build unix

package integration

import (
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
	"testing"
)

// serverAccount is the account a server that refuses to run as root runs as
// when the tests run as root.
type serverAccount struct {
	name     string
	uid, gid int
}

// unprivilegedAccount returns, when the tests run as root, the account that
// PostgreSQL is to run as: "postgres", which Debian's package creates, or
// "nobody" where there is none. It returns nil when the tests do not run as
// root: the server then runs as the tests do.
func unprivilegedAccount(tb testing.TB) *serverAccount {
	tb.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	var errs []error
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		uid, errUID := strconv.Atoi(u.Uid)
		gid, errGID := strconv.Atoi(u.Gid)
		if errUID != nil || errGID != nil {
			tb.Fatalf("user %s has uid %q and gid %q: want numbers", name, u.Uid, u.Gid)
		}
		return &serverAccount{name: name, uid: uid, gid: gid}
	}
	tb.Fatalf("the tests run as root, which PostgreSQL refuses, and there is no unprivileged account to run it as: %v", errs)
	return nil
}

// own gives the account path, which it is to write to.
func (a *serverAccount) own(tb testing.TB, path string) {
	tb.Helper()
	if a == nil {
		return
	}
	if err := os.Chown(path, a.uid, a.gid); err != nil {
		tb.Fatalf("giving %s to user %s: %v", path, a.name, err)
	}
}

// runs makes cmd run as the account.
func (a *serverAccount) runs(cmd *exec.Cmd) {
	if a == nil {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = new(syscall.SysProcAttr)
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(a.uid), Gid: uint32(a.gid)}
}
