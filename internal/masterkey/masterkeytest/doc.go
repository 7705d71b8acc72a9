// Package masterkeytest holds the conformance suite every master-key driver
// passes, [Run], and an in-memory [Fake] driver for tests of callers.
package masterkeytest
