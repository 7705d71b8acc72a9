package main

import (
	"regexp"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// waitForTimeout bounds how long waitfor retries: generous, for a loaded
// machine; waitfor returns as soon as the output matches.
const waitForTimeout = 60 * time.Second

// cmdWaitFor implements "waitfor REGEXP PROGRAM ARGS...": it runs the
// program until its stdout matches REGEXP (a background job's progress,
// such as a re-wrap), and fails after waitForTimeout. stdout and stderr
// are those of the last run.
func cmdWaitFor(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! waitfor")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: waitfor REGEXP PROGRAM [ARGS...]")
	}
	re, err := regexp.Compile("(?m)" + args[0])
	ts.Check(err)
	deadline := time.Now().Add(waitForTimeout)
	for {
		err := ts.Exec(args[1], args[2:]...)
		if err == nil && re.MatchString(ts.ReadFile("stdout")) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitfor: no match for %#q in the stdout of %v after %v (last error %v)", args[0], args[1:], waitForTimeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
