//go:build !linux

package awsemu

import "errors"

func loopbackUp() error {
	return errors.New("private network namespaces need Linux")
}
