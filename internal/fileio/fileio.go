// Package fileio opens and reads files whose path a user gave. Open
// refuses anything but a regular file, so that a named pipe, a device or
// a directory named where a file is expected gives an error at once
// instead of blocking the run or reading forever; ReadFileMax also
// bounds what it reads, so that a file a user or a corrupted disk made
// absurdly large is refused instead of allocated.
package fileio

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrTooLarge is returned by ReadFileMax for a file over its bound.
var ErrTooLarge = errors.New("file too large")

// ErrNotRegular is wrapped (in an *fs.PathError) by Open and the readers
// for a path that names something other than a regular file.
var ErrNotRegular = errors.New("not a regular file")

// Open opens path for reading if it is a regular file (after following
// symbolic links). A named pipe, device, socket or directory gives an
// *fs.PathError wrapping ErrNotRegular that says what the path is.
//
// Opening a FIFO for reading blocks until a writer appears, so the path
// is checked before it is opened; and because it could be replaced in
// between, it is opened without blocking (O_NONBLOCK where the system
// has it) and checked again through the open descriptor.
func Open(path string) (*os.File, error) {
	f, _, err := OpenSized(path)
	return f, err
}

// OpenSized is Open that also returns the file's size, read from the open
// descriptor (so it is the size of the file being read, not of whatever
// the path named a moment earlier).
func OpenSized(path string) (*os.File, int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			pe.Op = "open" // what the caller asked for, as os.Open says it
		}
		return nil, 0, err
	}
	if err := regular(path, fi); err != nil {
		return nil, 0, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return nil, 0, err
	}
	if fi, err = f.Stat(); err == nil {
		err = regular(path, fi)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// Check reports whether path names a regular file that can be opened for
// reading, with the error Open would give.
func Check(path string) error {
	f, err := Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// regular returns nil for a regular file and an *fs.PathError wrapping
// ErrNotRegular, naming what it is instead, for anything else.
func regular(path string, fi fs.FileInfo) error {
	m := fi.Mode()
	if m.IsRegular() {
		return nil
	}
	return &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w: it is %s", ErrNotRegular, Describe(m))}
}

// Describe names the kind of file a mode is, for messages: "a directory",
// "a named pipe (FIFO)", … .
func Describe(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "not a regular file"
}

// ReadFile reads the regular file at path (see Open).
func ReadFile(path string) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// ReadFileMax reads the regular file at path (see Open) if it holds at
// most max bytes; a larger file gives an error wrapping ErrTooLarge,
// after reading max+1 bytes at most, that names the path, the bound and
// what the file should have been (kind, e.g. "a model file").
func ReadFileMax(path string, max int64, kind string) ([]byte, error) {
	fh, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: %w: more than %d bytes, too many for %s", path, ErrTooLarge, max, kind)
	}
	return b, nil
}
