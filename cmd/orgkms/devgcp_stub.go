//go:build no_gcpkms

package main

import "github.com/orgkms/orgkms/internal/config"

// devGCP: a build without the gcpkms driver offers no Google cloud in
// orgkms dev.
func devGCP() (func(*config.Config), func(), error) { return nil, func() {}, nil }

// devGCPKey is the demo key of the Google cloud, which this build lacks.
const devGCPKey = ""
