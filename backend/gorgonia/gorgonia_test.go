package gorgonia_test

import (
	"testing"

	"github.com/distill-dev/distill/backend"
	"github.com/distill-dev/distill/backend/backendtest"
	_ "github.com/distill-dev/distill/backend/gorgonia"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, backendtest.Registered("gorgonia", backend.Options{}))
}
