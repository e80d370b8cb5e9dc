// Package onnxpb holds the Go types of the ONNX protobuf schema
// (ModelProto, GraphProto, NodeProto, TensorProto, …), generated with
// protoc-gen-go from onnx.proto, vendored here from the onnx Python
// package 1.12.0 (Debian 12's python3-onnx; IR version 8, SPDX
// Apache-2.0). Package onnx builds models with them; tests and tools
// can decode .onnx files with proto.Unmarshal into a *ModelProto.
//
// To regenerate onnx.pb.go (after replacing onnx.proto):
//
//	apt-get install -y protobuf-compiler
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@latest
//	go generate ./onnx/onnxpb
//
// The schema keeps its protobuf package name "onnx", so the message
// types register as onnx.ModelProto etc. in the global protobuf
// registry; a program that also links another Go binding of the same
// schema built with google.golang.org/protobuf gets a registration
// conflict (see GOLANG_PROTOBUF_REGISTRATION_CONFLICT).
package onnxpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/distill-dev/distill/onnx/onnxpb onnx.proto
