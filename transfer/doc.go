// Package transfer builds, caches and serves transfer sets: inputs
// labelled with one or more teachers' outputs, computed once and kept on
// disk, so that students distil without running a teacher in the loop.
//
// A transfer set has N base examples (a training split or an unlabelled
// set) and K augmented copies of each (package augment), N·(K+1) rows in
// all; row r is copy r / N of base example r % N, and copy 0 is the
// example itself. For every row it stores each teacher's logits and,
// optionally, named feature tensors (FeatureFn).
//
// # What is stored, and why
//
// Only the teachers' outputs are stored, not the augmented inputs: those
// are recomputed from the base data, deterministically from (seed,
// example, copy), whenever a row is gathered. An MNIST input is 784
// values against 10 logits, so storing K copies of the inputs would make
// the set about 80 times larger (1.9 GB against 24 MB for K = 9), while
// recomputing a copy costs microseconds.
//
// Each teacher's raw logits are stored, not softened probabilities, so
// that one set serves every temperature and every ensemble weighting.
// They are float32 by default: 10 classes cost 40 bytes a row per
// teacher, and a cached target is then bit for bit what the teacher
// computed in the loop. Float16 halves the size (relative error at most
// 2⁻¹¹), which pays when large feature tensors are stored.
//
// # On disk
//
// A set lives in <cache>/<key>/, where key = Key(Description) is the
// SHA-256 of a canonical encoding of everything that determines the
// stored values: the base data's content hash, count and shape; each
// teacher's weights hash and features; the class count; K, the seed and
// the augmentation (with its algorithm version); the dtype; the format
// version. The directory holds:
//
//   - shard-00000.bin, shard-00001.bin, …: consecutive runs of rows, each
//     at most BuildSpec.ShardBytes (64 MiB by default). A shard is a
//     40-byte header (magic "DSTLXFER", version 1, dtype code, first row,
//     rows, values per row; integers little-endian), the rows as
//     little-endian float32 or float16, every teacher's logits then every
//     teacher's features, and the SHA-256 of all that (32 bytes).
//   - manifest.json: the key, the full Description (including names and
//     weights), the row layout and the shard list with each file's
//     SHA-256. It is written last, so its presence means the set is
//     complete.
//
// Every file is written atomically (internal/atomicfile). An interrupted
// build leaves complete shards and no manifest; the next build of the
// same key keeps each shard whose header and own checksum verify and
// computes only the rest. Open checks the manifest and the files' sizes,
// and every shard's checksums when first read (Verify reads them all);
// a damaged file is an error naming it that wraps ErrCorrupt.
//
// # Use in training
//
// A Set is a train.Source (Gather recomputes the inputs and gives the
// base labels; a mixed-up row takes the label of its larger part) and,
// through Ensemble(T), a train.Teacher that looks the targets up by row
// index. With several teachers Ensemble returns T·log p̄, where p̄ is
// the weighted mean of the teachers' softmax(z/T): a logit vector whose
// softmax at temperature T is exactly p̄, so the existing loss distils
// from the ensemble's mean prediction unchanged (see Set.Ensemble).
//
// For feature distillation (hints, attention transfer), a teacher built
// with LayerFeatures stores the outputs of the layers the students'
// feature terms read, and FeatureTeacher serves them, with the ensemble's
// soft targets, as a train.FeatureTeacher: the teacher is not run in the
// loop for those terms either. An unlabelled set (BuildSpec.Unlabelled)
// gives each row the ensemble's most probable class as its hard label.
package transfer
