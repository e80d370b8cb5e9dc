package transfer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/distill-dev/distill/data"
)

// Cache is a directory of transfer sets, one subdirectory per key.
type Cache struct {
	// Dir is the cache root; empty means DefaultDir().
	Dir string
}

// DefaultDir returns the default cache root,
// os.UserCacheDir()/distill/transfer.
func DefaultDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("transfer: no cache directory (set one explicitly): %w", err)
	}
	return filepath.Join(d, "distill", "transfer"), nil
}

// root returns the cache root.
func (c Cache) root() (string, error) {
	if c.Dir != "" {
		return c.Dir, nil
	}
	return DefaultDir()
}

// GetOrBuild returns the transfer set that spec and teachers describe:
// the cached one if a complete set with the same key is there and every
// shard verifies, or else one built now (keeping the verified shards of
// an interrupted or damaged build). spec.Dir is replaced by the cache
// root. The returned set uses the teachers' weights given here, whatever
// weights it was built with. progress is as for Build and is not called
// when the set is reused.
func (c Cache) GetOrBuild(ctx context.Context, spec BuildSpec, teachers []Teacher, progress func(done, total int)) (*Set, error) {
	root, err := c.root()
	if err != nil {
		return nil, err
	}
	spec.Dir = root
	d, err := Describe(spec, teachers)
	if err != nil {
		return nil, err
	}
	if s, err := c.reuse(root, d, spec.Data); err == nil {
		return s, nil
	}
	return build(ctx, spec, teachers, d, progress)
}

// reuse opens and fully verifies the cached set of d, if there is one.
func (c Cache) reuse(root string, d Description, base *data.Dataset) (*Set, error) {
	dir := filepath.Join(root, Key(d))
	m, err := readManifest(dir)
	if err != nil {
		return nil, err
	}
	if m.Key != Key(d) {
		return nil, fmt.Errorf("transfer: %s: %w", dir, corrupt("manifest is for key %s", m.Key))
	}
	s, err := openWith(dir, m, base, d.Source, weightsOf(d))
	if err != nil {
		return nil, err
	}
	if err := s.Verify(); err != nil {
		return nil, err
	}
	return s, nil
}

// Open opens the complete set key in the cache, built from base; see
// Open.
func (c Cache) Open(key string, base *data.Dataset) (*Set, error) {
	root, err := c.root()
	if err != nil {
		return nil, err
	}
	return Open(root, key, base)
}
