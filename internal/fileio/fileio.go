// Package fileio reads small files (specs, reports) whose size a user or
// a corrupted disk could make absurd: reads stop at a bound instead of
// allocating whatever the file claims.
package fileio

import (
	"errors"
	"io"
	"os"
)

// ErrTooLarge is returned by ReadFileMax for a file over its bound.
var ErrTooLarge = errors.New("file too large")

// ReadFileMax reads path if it holds at most max bytes; a larger file
// gives ErrTooLarge after reading max+1 bytes at most.
func ReadFileMax(path string, max int64) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, ErrTooLarge
	}
	return b, nil
}
