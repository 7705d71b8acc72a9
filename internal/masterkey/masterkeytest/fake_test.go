package masterkeytest

import "testing"

func TestFakeConformance(t *testing.T) { Run(t, FakeHarness()) }
