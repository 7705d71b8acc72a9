//go:build !unix

package cmk_test

import (
	"testing"
	"time"
)

// processCPU is not measured here: the benchmark reports 0.
func processCPU(testing.TB) time.Duration { return 0 }

// procCPU is not measured here: the benchmark reports 0.
func procCPU(int) time.Duration { return 0 }
