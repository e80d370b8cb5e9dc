package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// generated is a cut of gotch's torch_api_generated.cpp.h: three wrappers.
const generated = `// generated
void atg_add(tensor *out__, tensor self, tensor other) {
  PROTECT(
    auto outputs__ = torch::add(*self, *other);
    out__[0] = new torch::Tensor(outputs__);
  )
}

void atg_exotic(tensor *out__, tensor self) {
  PROTECT(
    auto outputs__ = torch::_exotic(*self, at::NewType{});
    out__[0] = new torch::Tensor(outputs__);
  )
}

int64_t atg_count(tensor self) {
  PROTECT(
    return torch::_count(*self);
  )
  return 0;
}
`

func writeLibtch(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "torch_api_generated.cpp.h"), []byte(generated), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "torch_api.cpp"), []byte("#include \"torch_api.h\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeLog(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "errors.txt")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStubReplacesFailingWrappers(t *testing.T) {
	dir := writeLibtch(t)
	// A direct error in one wrapper, and a template error in a libtorch
	// header instantiated from another.
	log := writeLog(t, `torch_api_generated.cpp.h: In function 'void atg_exotic(at::Tensor**, tensor)':
torch_api_generated.cpp.h:11:50: error: 'NewType' is not a member of 'at'
/usr/include/c10/util/ArrayRef.h: In instantiation of 'c10::ArrayRef<T>::ArrayRef(const Container&)':
torch_api_generated.cpp.h:18:24:   required from here
/usr/include/c10/util/ArrayRef.h:100:5: error: static assertion failed
`)
	list := filepath.Join(t.TempDir(), "stubbed.txt")
	n, err := runStub(dir, log, list)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("stubbed %d functions, want 2", n)
	}
	src, _ := os.ReadFile(filepath.Join(dir, "torch_api_generated.cpp.h"))
	if !strings.Contains(string(src), "torch::add(*self, *other)") {
		t.Error("atg_add, which compiled, was changed")
	}
	if strings.Contains(string(src), "torch::_exotic") || strings.Contains(string(src), "torch::_count") {
		t.Errorf("failing bodies were kept:\n%s", src)
	}
	if strings.Count(string(src), stubMarker) != 2 || strings.Count(string(src), "return {};") != 1 {
		t.Errorf("want two stubbed bodies, one returning a value:\n%s", src)
	}
	got, err := readList(list)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got["atg_exotic"], "'NewType' is not a member") || !strings.Contains(got["atg_count"], "static assertion failed") || len(got) != 2 {
		t.Errorf("list = %q", got)
	}
	// A second pass over the same error must refuse rather than loop.
	if _, err := runStub(dir, log, ""); err == nil || !strings.Contains(err.Error(), "still fails after its body was stubbed") {
		t.Errorf("restubbing: err = %v", err)
	}
}

func TestStubRefusesWhatStubbingCannotFix(t *testing.T) {
	for name, log := range map[string]string{
		"missing header":       "torch_api.h:3:10: fatal error: torch/all.h: No such file or directory\ncompilation terminated.\n",
		"fatal in wrappers":    "torch_api_generated.cpp.h:1:10: fatal error: x.h: No such file or directory\n",
		"error in torch_api.h": "torch_api.h: In function 'void at_manual_seed(int64_t)':\ntorch_api.h:40:3: error: 'manual_seed' was not declared in this scope\n",
		// A header error after an unrelated context must not be blamed on an
		// earlier instantiation chain.
		"header error after another context": `/usr/include/c10/util/ArrayRef.h: In instantiation of 'X':
torch_api_generated.cpp.h:18:24:   required from here
/usr/include/c10/util/ArrayRef.h:100:5: error: static assertion failed
torch_api.h: In function 'void f()':
torch_api.h:7:3: error: 'g' was not declared in this scope
`,
		"not a wrapper": "torch_api_generated.cpp.h:1:1: error: expected declaration\n",
		"no error":      "warning: nothing\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeLibtch(t)
			before, _ := os.ReadFile(filepath.Join(dir, "torch_api_generated.cpp.h"))
			_, err := runStub(dir, writeLog(t, log), "")
			if err == nil {
				t.Fatal("stubbed what it cannot fix")
			}
			after, _ := os.ReadFile(filepath.Join(dir, "torch_api_generated.cpp.h"))
			if name != "header error after another context" && string(before) != string(after) {
				t.Error("the file changed although stubbing failed")
			}
			if name != "no error" && !strings.Contains(err.Error(), "error") {
				t.Errorf("the message does not quote the compiler: %v", err)
			}
		})
	}
}

func TestStubRefusesOneLineFunctions(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "torch_api_generated.cpp.h"), []byte("int atg_one(tensor t) { return torch::one(*t); }\n"), 0o644)
	_, err := runStub(dir, writeLog(t, "torch_api_generated.cpp.h:1:32: error: 'one' is not a member of 'torch'\n"), "")
	if err == nil || !strings.Contains(err.Error(), "one-line function") || !strings.Contains(err.Error(), "'one' is not a member") {
		t.Errorf("err = %v", err)
	}
}

func TestStubbedInUse(t *testing.T) {
	stubbed := map[string]string{"atg_exotic": "x.h:1:1: error: gone", "at_run_backward": "torch_api.cpp:9:1: error: changed"}
	if err := stubbedInUse(stubbed, map[string]bool{"atg_add": true}); err != nil {
		t.Errorf("unused stubs: %v", err)
	}
	err := stubbedInUse(stubbed, map[string]bool{"atg_add": true, "at_run_backward": true})
	if err == nil || !strings.Contains(err.Error(), "at_run_backward: torch_api.cpp:9:1: error: changed") || strings.Contains(err.Error(), "atg_exotic") {
		t.Errorf("err = %v", err)
	}
}

// TestCalledWrappersFromALinkedBinary builds a program whose cgo package
// (named libtch, like gotch's) defines two C functions of which main calls
// one: only that one's call stub survives the linker, which is what lets
// the build derive the ops distill uses from its binaries.
func TestCalledWrappersFromALinkedBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a cgo program")
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no C compiler")
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/prog\n\ngo 1.22\n",
		"libtch/libtch.go": `package libtch

// static void atg_used(void) {}
// static void atg_unused(void) {}
import "C"

func Used()   { C.atg_used() }
func Unused() { C.atg_unused() }
`,
		"main.go": "package main\n\nimport \"example.com/prog/libtch\"\n\nfunc main() { libtch.Used() }\n",
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "prog")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	got, err := calledWrappers(bin)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]bool{"atg_used": true}; !reflect.DeepEqual(got, want) {
		t.Errorf("called = %v, want %v", got, want)
	}
	list := filepath.Join(dir, "stubbed.txt")
	os.WriteFile(list, []byte("atg_unused\tx: error: a\n"), 0o644)
	if _, err := runCheck(list, []string{bin}); err != nil {
		t.Errorf("an unused stub failed the check: %v", err)
	}
	os.WriteFile(list, []byte("atg_used\tx: error: b\n"), 0o644)
	if _, err := runCheck(list, []string{bin}); err == nil || !strings.Contains(err.Error(), "atg_used: x: error: b") {
		t.Errorf("a used stub passed the check: %v", err)
	}
}
