//go:build unix

package api

import "syscall"

// umask narrows the socket's permissions from its creation on, so there is
// no window in which another user could connect before the chmod.
func umask(mask int) int { return syscall.Umask(mask) }
