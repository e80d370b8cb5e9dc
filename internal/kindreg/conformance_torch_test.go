//go:build torch

package kindreg_test

import _ "github.com/distill-dev/distill/backend/torch"

func init() { wantEngines = append(wantEngines, "backend/torch") }
