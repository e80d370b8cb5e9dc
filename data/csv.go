package data

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/distill-dev/distill/internal/fileio"
)

// csvTable is a CSV file's features and raw labels.
type csvTable struct {
	path   string
	header []string // nil when the file has none
	x      []float32
	labels []string
	width  int // features per row
}

// LoadCSV loads a dataset of feature vectors from CSV files: trainPath
// and, if not "", testPath, with the same columns. One column is the
// label: the one whose header is labelColumn, or, when labelColumn is
// "", the last. The first row is a header when labelColumn is set or
// when one of its feature fields is not a number. Every other column is
// a feature and must hold finite numbers. Labels that are all
// non-negative integers are the class indices; otherwise each distinct
// label is a class, numbered in sorted order over both files. Examples
// have shape [features]. test is nil when testPath is "".
func LoadCSV(trainPath, testPath, labelColumn string) (train, test *Dataset, err error) {
	tr, err := readCSVTable(trainPath, labelColumn)
	if err != nil {
		return nil, nil, err
	}
	tables := []*csvTable{tr}
	if testPath != "" {
		te, err := readCSVTable(testPath, labelColumn)
		if err != nil {
			return nil, nil, err
		}
		if te.width != tr.width {
			return nil, nil, fmt.Errorf("load CSV: %s has %d feature columns but %s has %d; both files must have the same columns",
				trainPath, tr.width, testPath, te.width)
		}
		tables = append(tables, te)
	}
	var all []string
	for _, t := range tables {
		all = append(all, t.labels...)
	}
	classOf, classes, err := csvClasses(all)
	if err != nil {
		return nil, nil, fmt.Errorf("load CSV: %s: %w", trainPath, err)
	}
	out := make([]*Dataset, len(tables))
	for i, t := range tables {
		d := &Dataset{
			Name:    strings.TrimSuffix(filepath.Base(t.path), filepath.Ext(t.path)),
			Shape:   []int{t.width},
			Classes: classes,
			X:       t.x,
			Y:       make([]int32, len(t.labels)),
		}
		for j, l := range t.labels {
			d.Y[j] = classOf[l]
		}
		out[i] = d
	}
	if len(out) == 2 {
		return out[0], out[1], nil
	}
	return out[0], nil, nil
}

// csvClasses maps labels to class indices: integers as they are when
// all are non-negative integers, otherwise distinct labels in sorted
// order.
func csvClasses(labels []string) (map[string]int32, int, error) {
	classOf := map[string]int32{}
	numeric := true
	classes := 0
	for _, l := range labels {
		v, err := strconv.Atoi(l)
		if err != nil || v < 0 {
			numeric = false
			break
		}
		if v >= maxClasses {
			return nil, 0, fmt.Errorf("label %d is not a class index in [0, %d); is the label column the right one (data.label_column)?", v, maxClasses)
		}
		classOf[l] = int32(v)
		classes = max(classes, v+1)
	}
	if numeric {
		return classOf, classes, nil
	}
	names := slices.Compact(slices.Sorted(slices.Values(labels)))
	if len(names) > maxClasses {
		return nil, 0, fmt.Errorf("%d distinct labels; at most %d classes are supported (is the label column the right one? set data.label_column)", len(names), maxClasses)
	}
	clear(classOf)
	for i, n := range names {
		classOf[n] = int32(i)
	}
	return classOf, len(names), nil
}

func readCSVTable(path, labelColumn string) (*csvTable, error) {
	f, err := fileio.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load CSV: %w", err)
	}
	defer f.Close()
	t, err := parseCSV(f, labelColumn)
	if err != nil {
		return nil, fmt.Errorf("load CSV: %s: %w", path, err)
	}
	t.path = path
	return t, nil
}

// parseCSV reads a table of numeric features and one label column.
func parseCSV(r io.Reader, labelColumn string) (*csvTable, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.TrimLeadingSpace = true
	t := &csvTable{}
	label := -1
	row := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) && errors.Is(err, csv.ErrFieldCount) {
				return nil, fmt.Errorf("line %d has %d fields, but the first row has %d; every row needs the same columns", pe.Line, len(rec), cr.FieldsPerRecord)
			}
			return nil, err
		}
		row++
		if row == 1 {
			if len(rec) < 2 {
				return nil, fmt.Errorf("the first row has %d column; a CSV dataset needs at least one feature column and a label column", len(rec))
			}
			label = len(rec) - 1
			header := labelColumn != ""
			if labelColumn != "" {
				label = slices.Index(rec, labelColumn)
				if label < 0 {
					return nil, fmt.Errorf("no column is named %q (the header is %s); set data.label_column to the label column's name, or leave it unset for the last column",
						labelColumn, quoteList(rec))
				}
			} else {
				for i, v := range rec {
					if _, err := strconv.ParseFloat(v, 64); err != nil && i != label {
						header = true
						break
					}
				}
			}
			if header {
				t.header = slices.Clone(rec)
				continue
			}
		}
		for i, v := range rec {
			if i == label {
				if v == "" {
					return nil, fmt.Errorf("line %d: the label (column %d) is empty", row, i+1)
				}
				t.labels = append(t.labels, strings.Clone(v))
				continue
			}
			x, err := strconv.ParseFloat(v, 32)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("line %d, column %d (%s): %q is not a finite number; every column but the label must be numeric", row, i+1, csvColumnName(t.header, i), v)
			}
			t.x = append(t.x, float32(x))
		}
		if len(t.x) > maxElements {
			return nil, fmt.Errorf("more than %d values; the file is too large", maxElements)
		}
	}
	t.width = max(cr.FieldsPerRecord-1, 0)
	if len(t.labels) == 0 {
		return nil, errors.New("no data rows; the file needs at least one example after the optional header")
	}
	return t, nil
}

func csvColumnName(header []string, i int) string {
	if i < len(header) {
		return strconv.Quote(header[i])
	}
	return "no header"
}
