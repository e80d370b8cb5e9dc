//go:build unix

package fileio

import "syscall"

// openFlags makes opening a FIFO that replaced a checked regular file
// return at once instead of waiting for a writer; it changes nothing
// for regular files.
const openFlags = syscall.O_NONBLOCK
