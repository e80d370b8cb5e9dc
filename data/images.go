package data

import (
	"errors"
	"fmt"
	"image"
	"image/draw"
	_ "image/jpeg" // registers JPEG for image.Decode
	_ "image/png"  // registers PNG for image.Decode
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	xdraw "golang.org/x/image/draw"

	"github.com/distill-dev/distill/internal/fileio"
)

// maxImagePixels bounds one image's width × height, checked from its
// header before it is decoded, so that a crafted file cannot make the
// decoder allocate gigabytes.
const maxImagePixels = 1 << 26

// ImageFolderOptions says how LoadImageFolder turns images into inputs.
type ImageFolderOptions struct {
	// Channels is 1 (gray, the default when 0) or 3 (RGB).
	Channels int
	// Height and Width, if set (both), are the size every image is
	// resized to. When unset, every image must have the first one's size.
	Height, Width int
	// Mean and Std normalise each channel after scaling to [0, 1]:
	// (v - Mean[c]) / Std[c]. Empty means 0 and 1; one value applies to
	// every channel; otherwise one value per channel.
	Mean, Std []float32
}

// imageExts are the file extensions decoded; other files are skipped.
var imageExts = []string{".png", ".jpg", ".jpeg"}

// LoadImageFolder loads a dataset of images stored one subfolder per
// class: dir/<class>/<image>.png|.jpg|.jpeg. The classes are the
// subfolders' names in sorted order. If dir holds subfolders named
// train and test, and nothing else, they are the two splits, each laid
// out as above with the test's classes among the training set's;
// otherwise test is nil. Files of other extensions and hidden files are
// skipped. An image that cannot be decoded, a class folder with no
// images, and (without a resize) images of different sizes are errors
// naming the file. Examples have shape [Channels, Height, Width].
func LoadImageFolder(dir string, o ImageFolderOptions) (train, test *Dataset, err error) {
	if o.Channels == 0 {
		o.Channels = 1
	}
	if o.Channels != 1 && o.Channels != 3 {
		return nil, nil, fmt.Errorf("load images: channels must be 1 (gray) or 3 (RGB), got %d", o.Channels)
	}
	if (o.Height == 0) != (o.Width == 0) || o.Height < 0 || o.Width < 0 {
		return nil, nil, fmt.Errorf("load images: the resize needs a positive height and width, got %dx%d", o.Height, o.Width)
	}
	mean, std, err := channelStats(o)
	if err != nil {
		return nil, nil, err
	}
	subs, err := subdirs(dir)
	if err != nil {
		return nil, nil, err
	}
	if slices.Equal(subs, []string{"test", "train"}) {
		classes, err := subdirs(filepath.Join(dir, "train"))
		if err != nil {
			return nil, nil, err
		}
		testClasses, err := subdirs(filepath.Join(dir, "test"))
		if err != nil {
			return nil, nil, err
		}
		for _, c := range testClasses {
			if !slices.Contains(classes, c) {
				return nil, nil, fmt.Errorf("load images: %s has a class folder %q that %s lacks; the test classes must be among the training classes",
					filepath.Join(dir, "test"), c, filepath.Join(dir, "train"))
			}
		}
		l := &imageLoader{o: o, mean: mean, std: std}
		if train, err = l.load(filepath.Join(dir, "train"), classes, classes); err != nil {
			return nil, nil, err
		}
		if test, err = l.load(filepath.Join(dir, "test"), testClasses, classes); err != nil {
			return nil, nil, err
		}
		train.Name, test.Name = filepath.Base(dir), filepath.Base(dir)
		return train, test, nil
	}
	l := &imageLoader{o: o, mean: mean, std: std}
	if train, err = l.load(dir, subs, subs); err != nil {
		return nil, nil, err
	}
	train.Name = filepath.Base(dir)
	return train, nil, nil
}

func channelStats(o ImageFolderOptions) (mean, std []float32, err error) {
	expand := func(name string, v []float32, def float32) ([]float32, error) {
		switch len(v) {
		case 0:
			return slices.Repeat([]float32{def}, o.Channels), nil
		case 1:
			return slices.Repeat(v, o.Channels), nil
		case o.Channels:
			return v, nil
		}
		return nil, fmt.Errorf("load images: %s has %d values; give one, or one per channel (%d)", name, len(v), o.Channels)
	}
	if mean, err = expand("mean", o.Mean, 0); err != nil {
		return nil, nil, err
	}
	if std, err = expand("std", o.Std, 1); err != nil {
		return nil, nil, err
	}
	for c, s := range std {
		if !(s > 0) {
			return nil, nil, fmt.Errorf("load images: std[%d] is %v; it must be positive", c, s)
		}
	}
	return mean, std, nil
}

// subdirs lists dir's visible subdirectories, sorted; it is an error if
// there are none.
func subdirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load images: %w; data.dir must be a folder with one subfolder of images per class", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("load images: %s has no subfolders; put the images of each class in a subfolder named after the class", dir)
	}
	return out, nil // os.ReadDir sorts by name
}

type imageLoader struct {
	o         ImageFolderOptions
	mean, std []float32
	// h and w are the size of the examples, fixed by the options or by
	// the first image; first names that image, for messages.
	h, w  int
	first string
}

// load reads the class folders names of dir; all lists every class of
// the dataset, giving the label indices.
func (l *imageLoader) load(dir string, names, all []string) (*Dataset, error) {
	d := &Dataset{Classes: len(all)}
	for _, name := range names {
		label := int32(slices.Index(all, name))
		cdir := filepath.Join(dir, name)
		entries, err := os.ReadDir(cdir)
		if err != nil {
			return nil, fmt.Errorf("load images: %w", err)
		}
		n := 0
		for _, e := range entries {
			ext := strings.ToLower(filepath.Ext(e.Name()))
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") || !slices.Contains(imageExts, ext) {
				continue
			}
			path := filepath.Join(cdir, e.Name())
			px, err := l.decode(path)
			if err != nil {
				return nil, err
			}
			d.X = append(d.X, px...)
			d.Y = append(d.Y, label)
			n++
			if len(d.X) > maxElements {
				return nil, fmt.Errorf("load images: %s holds more than %d values; use fewer or smaller images", dir, maxElements)
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("load images: class folder %s has no images (.png, .jpg or .jpeg); add some or remove the folder", cdir)
		}
	}
	d.Shape = []int{l.o.Channels, l.h, l.w}
	return d, nil
}

// decode reads one image as Channels × h × w normalised values.
func (l *imageLoader) decode(path string) ([]float32, error) {
	f, err := fileio.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load images: %w", err)
	}
	defer f.Close()
	cfg, format, err := image.DecodeConfig(f)
	if err != nil {
		return nil, fmt.Errorf("load images: %s cannot be decoded as PNG or JPEG: %w; replace or remove it", path, err)
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width*cfg.Height > maxImagePixels {
		return nil, fmt.Errorf("load images: %s is a %dx%d %s; images must have between 1 and %d pixels", path, cfg.Width, cfg.Height, format, maxImagePixels)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("load images: %s: %w", path, err)
	}
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("load images: %s cannot be decoded as %s: %w; replace or remove it", path, format, err)
	}
	b := img.Bounds()
	if l.h == 0 {
		if l.o.Height > 0 {
			l.h, l.w = l.o.Height, l.o.Width
		} else {
			l.h, l.w, l.first = b.Dy(), b.Dx(), path
		}
	}
	rgba := image.NewRGBA(image.Rect(0, 0, l.w, l.h))
	switch {
	case b.Dx() == l.w && b.Dy() == l.h:
		draw.Draw(rgba, rgba.Bounds(), img, b.Min, draw.Src)
	case l.o.Height > 0:
		// The standard library has no resampling; x/image/draw (already
		// in the module graph through gonum/plot) does. Its bilinear
		// kernel widens when shrinking, so a downscale averages the
		// pixels it covers instead of aliasing.
		xdraw.BiLinear.Scale(rgba, rgba.Bounds(), img, b, xdraw.Src, nil)
	default:
		return nil, fmt.Errorf("load images: %s is %dx%d but %s is %dx%d; make all images one size, or set data.size to resize them",
			path, b.Dx(), b.Dy(), l.first, l.w, l.h)
	}
	return l.pixels(rgba), nil
}

// pixels converts an RGBA image to channel-first normalised values.
// Transparent pixels count as black (the image is premultiplied).
func (l *imageLoader) pixels(img *image.RGBA) []float32 {
	c, n := l.o.Channels, l.h*l.w
	out := make([]float32, c*n)
	for i := 0; i < n; i++ {
		p := img.Pix[4*i : 4*i+3]
		if c == 1 {
			// ITU-R BT.601 luma, as image/color's GrayModel.
			y := (19595*uint32(p[0]) + 38470*uint32(p[1]) + 7471*uint32(p[2]) + 1<<15) >> 16
			out[i] = (float32(y)/255 - l.mean[0]) / l.std[0]
			continue
		}
		for k := 0; k < 3; k++ {
			out[k*n+i] = (float32(p[k])/255 - l.mean[k]) / l.std[k]
		}
	}
	return out
}

// CheckImageFolder reports, without decoding images, whether dir is a
// folder with at least one subfolder.
func CheckImageFolder(dir string) error {
	_, err := subdirs(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("load images: %s does not exist; data.dir must be a folder with one subfolder of images per class", dir)
	}
	return err
}
