package main

func cmdBench(env *cliEnv, args []string) error { return nil }
