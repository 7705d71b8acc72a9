package main

// raceEnabled reports whether the tests were built with -race (race_test.go).
var raceEnabled bool
