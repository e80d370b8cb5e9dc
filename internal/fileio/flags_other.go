//go:build !unix

package fileio

// openFlags is empty where opening a file cannot block on a writer.
const openFlags = 0
